//! COPY and ADD on the engine side: where the sources are (the context, another stage, an
//! image, heredocs, URLs), their content hash for the cache key, and the copy itself.

use super::*;

impl Builder<'_> {
    /// The content digest of `found` (sources resolved in the build context), through the
    /// per-file digests build-cache.db keeps by stat, so that unchanged files are not read
    /// again. The outer error is the engine's, the inner one the sources'.
    pub(super) fn context_digest(
        &mut self,
        found: &[skiff_build::context::Source],
        excludes: Option<&Ignore>,
    ) -> Result<Result<skiff_build::context::SourceDigest, skiff_build::context::CopyError>> {
        if self.file_digests.is_none() {
            self.file_digests = Some(cache_db::FileDigests::load(
                &self.cache,
                &self.opts.context,
            )?);
        }
        let root = SourceRoot {
            dir: &self.opts.context,
            ignore: Some(&self.ignore),
            excludes,
        };
        let digests = self
            .file_digests
            .as_ref()
            .map(|d| d as &dyn skiff_build::context::ContentCache);
        let digest = root.digest_with(found, digests);
        if let Some(d) = &self.file_digests {
            d.flush(&self.cache)?;
        }
        Ok(digest)
    }

    /// The content hash of a COPY's sources, docker's description of them, and the key of
    /// the `--from` stage they come from.
    pub(super) fn hash_sources(
        &mut self,
        copy: &CopyStep,
        state: &StageState,
    ) -> Result<(skiff_build::context::SourceDigest, Option<String>)> {
        let (mut digest, from_key) = self.hash_sources_of(copy, state)?;
        if copy.parents {
            // The same files land elsewhere with --parents: the key must differ (the file
            // list is part of it; the history line, as docker writes it, does not say).
            digest.files.push("--parents".to_owned());
        }
        Ok((digest, from_key))
    }

    fn hash_sources_of(
        &mut self,
        copy: &CopyStep,
        _state: &StageState,
    ) -> Result<(skiff_build::context::SourceDigest, Option<String>)> {
        let fail = |e: skiff_build::context::CopyError| {
            step_failed(format!(
                "{} failed: {e}",
                if copy.add { "ADD" } else { "COPY" }
            ))
        };
        let excludes = Ignore::parse(&copy.excludes.join("\n"));
        if copy.remote {
            // docker downloads remote sources on every build and keys the cache on their
            // content; the files are kept for the copy that follows a miss.
            let (dir, names) = download(self.engine, copy)?;
            let root = SourceRoot {
                dir: dir.path(),
                ignore: None,
                excludes: None,
            };
            let found = root.resolve(&names).map_err(fail)?;
            let digest = root.digest(&found).map_err(fail)?;
            self.downloaded = Some((dir, names));
            return Ok((digest, None));
        }
        if !copy.inline.is_empty() {
            let dir = inline_dir(self.engine, copy)?;
            let root = SourceRoot {
                dir: dir.path(),
                ignore: None,
                excludes: None,
            };
            let found = root.resolve(&copy.sources).map_err(fail)?;
            return Ok((root.digest(&found).map_err(fail)?, None));
        }
        match &copy.from {
            None => {
                let root = SourceRoot {
                    dir: &self.opts.context,
                    ignore: Some(&self.ignore),
                    excludes: Some(&excludes),
                };
                let found = root.resolve(&copy.sources).map_err(fail)?;
                let digest = self
                    .context_digest(&found, Some(&excludes))?
                    .map_err(fail)?;
                Ok((digest, None))
            }
            Some(from) => {
                let src = self.source_of(from)?;
                let view = layer::View::new(self.engine, &src.layers)?;
                let root = SourceRoot {
                    dir: view.path(),
                    ignore: None,
                    excludes: Some(&excludes),
                };
                let found = root.resolve(&copy.sources).map_err(fail)?;
                Ok((root.digest(&found).map_err(fail)?, Some(src.key)))
            }
        }
    }

    /// What `--from=` names: a finished stage, else an image.
    pub(super) fn source_of(&mut self, from: &str) -> Result<Current> {
        if let Some(c) = self.stage_result(from, usize::MAX) {
            return Ok(c);
        }
        self.image(from)
    }

    pub(super) fn copy_step(
        &mut self,
        current: &Current,
        copy: &CopyStep,
        _state: &StageState,
    ) -> Result<LayerRecord> {
        let name = if copy.add { "ADD" } else { "COPY" };
        let fail =
            move |e: skiff_build::context::CopyError| step_failed(format!("{name} failed: {e}"));
        let from_layers = match &copy.from {
            Some(f) => Some(self.source_of(f)?.layers),
            None => None,
        };
        self.with_tree(current, |b, rootfs| {
            let owner = match &copy.chown {
                Some(c) => Some(
                    skiff_build::user::resolve_chown(rootfs, c)
                        .map_err(|e| step_failed(e.to_string()))?,
                ),
                None => None,
            };
            let opts = CopyOptions {
                owner,
                chmod: copy.chmod,
                extract_archives: copy.add,
                instruction: name,
                parents: copy.parents,
            };
            let excludes = Ignore::parse(&copy.excludes.join("\n"));
            if copy.remote {
                let Some((dir, names)) = b.downloaded.take() else {
                    anyhow::bail!("remote sources were not downloaded");
                };
                let root = SourceRoot {
                    dir: dir.path(),
                    ignore: None,
                    excludes: None,
                };
                let found = root.resolve(&names).map_err(fail)?;
                let opts = CopyOptions {
                    extract_archives: false,
                    ..opts
                };
                copy_into(rootfs, &root, &found, &copy.dest, &opts).map_err(fail)?;
                return Ok(());
            }
            if !copy.inline.is_empty() {
                let dir = inline_dir(b.engine, copy)?;
                let root = SourceRoot {
                    dir: dir.path(),
                    ignore: None,
                    excludes: None,
                };
                let found = root.resolve(&copy.sources).map_err(fail)?;
                copy_into(rootfs, &root, &found, &copy.dest, &opts).map_err(fail)?;
                return Ok(());
            }
            match &from_layers {
                None => {
                    let root = SourceRoot {
                        dir: &b.opts.context,
                        ignore: Some(&b.ignore),
                        excludes: Some(&excludes),
                    };
                    let found = root.resolve(&copy.sources).map_err(fail)?;
                    copy_into(rootfs, &root, &found, &copy.dest, &opts).map_err(fail)?;
                }
                Some(layers) => {
                    let view = layer::View::new(b.engine, layers)?;
                    let root = SourceRoot {
                        dir: view.path(),
                        ignore: None,
                        excludes: Some(&excludes),
                    };
                    let found = root.resolve(&copy.sources).map_err(fail)?;
                    copy_into(rootfs, &root, &found, &copy.dest, &opts).map_err(fail)?;
                }
            }
            Ok(())
        })
    }
}

/// Downloads the URL sources of an ADD into a temporary directory, each under the last
/// element of its URL path (mode 0600, mtime from `Last-Modified` or 0, as docker does), and
/// checks `--checksum`. Returns the directory and the file names.
fn download(engine: &Engine, copy: &CopyStep) -> Result<(tempfile::TempDir, Vec<String>)> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("build-download-")
        .tempdir_in(engine.tmp_dir()?)?;
    let mut names = Vec::new();
    for (i, url) in copy.sources.iter().enumerate() {
        if skiff_build::dispatch::is_git_source(url) {
            // A repository: its tree (at the ref, below the `:dir`) is a directory source,
            // whose contents land in the destination.
            let into = dir.path().join(format!("git-{i}"));
            fs::create_dir(&into)?;
            let tree = super::git::checkout(url, &into, copy.keep_git_dir, "ADD failed")
                .map_err(|e| step_failed(e.to_string()))?;
            let rel = tree
                .strip_prefix(fs::canonicalize(dir.path())?)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            names.push(rel);
            continue;
        }
        let path_part = url.split(['?', '#']).next().unwrap_or(url);
        let after_host = path_part.splitn(4, '/').nth(3).unwrap_or("");
        let name = after_host
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("__unnamed__")
            .to_owned();
        let response = ureq::get(url)
            .call()
            .map_err(|e| step_failed(format!("ADD failed: failed to GET {url}: {e}")))?;
        let mtime = response
            .headers()
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()
            })
            .map_or(0, |t| t.unix_timestamp());
        let target = dir.path().join(&name);
        let mut file =
            File::create(&target).with_context(|| format!("creating {}", target.display()))?;
        let mut hasher = skiff_image::digest::Hasher::new();
        let mut reader = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| step_failed(format!("ADD failed: reading {url}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        let digest = hasher.finish();
        if let Some(want) = &copy.checksum {
            if want != &digest.to_string() {
                return Err(step_failed(format!(
                    "ADD failed: digest mismatch {want}: {digest}"
                )));
            }
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600))?;
        let t = rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &target,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::empty(),
        )?;
        names.push(name);
    }
    Ok((dir, names))
}

/// The heredoc sources of a COPY as files (mode 0644, root-owned, mtime 0) in a temporary
/// directory.
fn inline_dir(engine: &Engine, copy: &CopyStep) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("build-heredoc-")
        .tempdir_in(engine.tmp_dir()?)?;
    for (name, body) in &copy.inline {
        let p = dir.path().join(name);
        fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
        let zero = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: zero,
                last_modification: zero,
            },
            rustix::fs::AtFlags::empty(),
        )?;
    }
    Ok(dir)
}
