//! `RUN --mount` on the engine side: what each mount adds to the step's cache key, and its
//! host side made ready for one run and undone after it.
//!
//! - `cache`: a directory under `<root>/build-cache-mounts/<hash of id>/data` that outlives
//!   builds (`skiff builder prune` empties it). A `lock` file beside it is flocked shared
//!   for `sharing=shared`, exclusively for `locked` and `private` (BuildKit hands a busy
//!   private cache's user a fresh directory; waiting is the simple approximation), and
//!   exclusively by prune, which skips caches in use.
//! - `bind`: the context (a filtered copy when `.dockerignore` hides something), a stage or
//!   an image (a read-only view of its layers). `rw` gets an overlay (or, where overlayfs
//!   does not work, a copy) whose writes are thrown away with it.
//! - `tmpfs`: handed to the runtime as is.
//! - `secret`: the value from `--secret`, in a private tmpfs bound read-only at the target,
//!   or an environment variable of the run; never in the key, the layer or the history.

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};

use skiff_build::executor::ExecMount;
use skiff_build::mounts::{MountKind, RunMount, Sharing};
use skiff_snapshot::mount::{mount_all, unmount_all};
use skiff_snapshot::Mount;

use super::*;

/// Where cache mounts live under the root.
const CACHE_MOUNTS: &str = "build-cache-mounts";

impl Builder<'_> {
    /// What a RUN's mounts may take from another stage or an image (`from=`), in mount
    /// order (`None` for the others).
    pub(super) fn mount_sources(&mut self, run: &RunStep) -> Result<Vec<Option<Current>>> {
        let mut out = Vec::with_capacity(run.mounts.len());
        for m in &run.mounts {
            out.push(match (&m.from, m.kind) {
                (Some(from), MountKind::Bind | MountKind::Cache) => Some(self.source_of(from)?),
                _ => None,
            });
        }
        Ok(out)
    }

    /// The parts a RUN's mounts add to its cache key: each mount's spec, the key of the
    /// stage or image it takes from, and the content digest of what it binds from the
    /// context (hashed as COPY hashes its sources).
    pub(super) fn mount_key(&mut self, run: &RunStep) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let sources = self.mount_sources(run)?;
        for (m, src) in run.mounts.iter().zip(&sources) {
            out.push(format!("mount={}", m.key()));
            if let Some(src) = src {
                out.push(format!("mount-from={}", src.key));
            } else if m.kind == MountKind::Bind {
                let root = SourceRoot {
                    dir: &self.opts.context,
                    ignore: Some(&self.ignore),
                    excludes: None,
                };
                let found = root
                    .resolve(&[source_or_root(&m.source)])
                    .map_err(|_| not_found(&m.source))?;
                let digest = self
                    .context_digest(&found, None)?
                    .map_err(|e| step_failed(format!("failed to compute cache key: {e}")))?;
                out.push(format!("mount-content={}", digest.hash));
            }
        }
        Ok(out)
    }
}

fn source_or_root(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_owned()
    } else {
        rel.to_owned()
    }
}

/// BuildKit's words for a bind source that is not there.
fn not_found(rel: &str) -> anyhow::Error {
    step_failed(format!(
        "failed to compute cache key: failed to calculate checksum of ref: \"/{rel}\": not found"
    ))
}

/// The host side of one run's mounts; dropping it undoes everything (after the run).
pub(super) struct Prepared<'e> {
    pub mounts: Vec<ExecMount>,
    /// `NAME=value` of the secrets given as environment variables.
    pub env: Vec<String>,
    /// Overlays and tmpfs mounted here, unmounted first.
    mounted: Vec<PathBuf>,
    views: Vec<layer::View<'e>>,
    temps: Vec<tempfile::TempDir>,
    /// Cache locks, held until the run ends.
    locks: Vec<File>,
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        for p in self.mounted.iter().rev() {
            if let Err(e) = unmount_all(p) {
                log::warn!("unmounting {}: {e}", p.display());
            }
        }
        // Then the views the overlays were on, then the scratch directories.
        self.views.clear();
        self.temps.clear();
        self.locks.clear();
    }
}

/// Makes the host side of `mounts` ready; `sources` is [`Builder::mount_sources`]'s answer.
pub(super) fn prepare<'e>(
    engine: &'e Engine,
    opts: &BuildOptions,
    ignore: &Ignore,
    mounts: &[RunMount],
    sources: &[Option<Current>],
) -> Result<Prepared<'e>> {
    let mut p = Prepared {
        mounts: Vec::new(),
        env: Vec::new(),
        mounted: Vec::new(),
        views: Vec::new(),
        temps: Vec::new(),
        locks: Vec::new(),
    };
    let scratch = |what: &str| -> Result<tempfile::TempDir> {
        // Named like the runner's bundles, so that what a killed build leaves is found.
        Ok(tempfile::Builder::new()
            .prefix(&format!("skiff-build-{}-{what}-", std::process::id()))
            .tempdir_in(engine.tmp_dir()?)?)
    };
    for (m, src) in mounts.iter().zip(sources) {
        let target = m.target.clone().unwrap_or_default();
        match m.kind {
            MountKind::Tmpfs => p.mounts.push(ExecMount::Tmpfs {
                target,
                size: m.size,
            }),
            MountKind::Secret => {
                let Some(value) = opts.secrets.get(&m.id) else {
                    if m.required {
                        return Err(step_failed(format!("secret {}: not found", m.id)));
                    }
                    continue;
                };
                if let Some(var) = &m.env {
                    p.env
                        .push(format!("{var}={}", String::from_utf8_lossy(value)));
                }
                if m.target.is_none() {
                    continue;
                }
                let dir = scratch("secret")?;
                let dir_path = dir.path().to_owned();
                // Held by `p` from here, so that an error below unmounts before removing.
                p.temps.push(dir);
                fs::set_permissions(&dir_path, fs::Permissions::from_mode(0o700))?;
                // A tmpfs keeps the value off the disk; where one cannot be mounted, the
                // private directory (removed after the run) has to do.
                let tmpfs = Mount {
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: vec!["size=1m".into(), "mode=0700".into()],
                };
                match mount_all(&[tmpfs], &dir_path) {
                    Ok(()) => p.mounted.push(dir_path.clone()),
                    Err(e) => log::debug!("no tmpfs for secrets ({e}); using a directory"),
                }
                let file = dir_path.join("secret");
                fs::write(&file, value)?;
                fs::set_permissions(&file, fs::Permissions::from_mode(m.mode.unwrap_or(0o400)))?;
                chown(&file, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))?;
                p.mounts.push(ExecMount::Bind {
                    source: file,
                    target,
                    readonly: true,
                });
            }
            MountKind::Cache => {
                let (data, lock) = cache_dir(engine, m, src.as_ref())?;
                p.locks.push(lock);
                let source = skiff_build::context::resolve_in_root(&data, &m.source, true)?;
                if !source.exists() {
                    fs::create_dir_all(&source)
                        .with_context(|| format!("creating {}", source.display()))?;
                }
                p.mounts.push(ExecMount::Bind {
                    source,
                    target,
                    readonly: m.readonly,
                });
            }
            MountKind::Bind => {
                let (path, ours) = match src {
                    Some(src) => {
                        let view = layer::View::new(engine, &src.layers)?;
                        let path =
                            skiff_build::context::resolve_in_root(view.path(), &m.source, true)?;
                        p.views.push(view);
                        (path, false)
                    }
                    None if ignore.is_empty() => (
                        skiff_build::context::resolve_in_root(&opts.context, &m.source, true)?,
                        false,
                    ),
                    None => {
                        // What .dockerignore hides must not show: a filtered copy.
                        let dir = scratch("context")?;
                        let root = SourceRoot {
                            dir: &opts.context,
                            ignore: Some(ignore),
                            excludes: None,
                        };
                        let found = root
                            .resolve(&[source_or_root(&m.source)])
                            .map_err(|_| not_found(&m.source))?;
                        let copy = CopyOptions {
                            instruction: "RUN --mount",
                            ..CopyOptions::default()
                        };
                        copy_into(dir.path(), &root, &found, "/", &copy)
                            .map_err(|e| step_failed(format!("RUN --mount: {e}")))?;
                        let path = match found.first() {
                            Some(f) if !f.is_dir => dir
                                .path()
                                .join(Path::new(&f.rel).file_name().unwrap_or_default()),
                            _ => dir.path().to_owned(),
                        };
                        p.temps.push(dir);
                        (path, true)
                    }
                };
                if fs::symlink_metadata(&path).is_err() {
                    return Err(not_found(&m.source));
                }
                let source = if m.readonly || ours {
                    path
                } else {
                    // Writes go to a layer of our own, thrown away after the run.
                    let dir = scratch("rw")?;
                    let source = discardable(&path, dir.path(), &mut p.mounted)?;
                    p.temps.push(dir);
                    source
                };
                p.mounts.push(ExecMount::Bind {
                    source,
                    target,
                    readonly: m.readonly,
                });
            }
            MountKind::Ssh => {
                return Err(step_failed(
                    "RUN --mount=type=ssh is not supported by skiff".to_owned(),
                ))
            }
        }
    }
    Ok(p)
}

/// A writable stand-in for `path` under `dir`: an overlay on it, or a copy where overlayfs
/// does not work (or `path` is a file).
fn discardable(path: &Path, dir: &Path, mounted: &mut Vec<PathBuf>) -> Result<PathBuf> {
    if path.is_dir() {
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir(d)?;
        }
        let overlay = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", path.display()),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", work.display()),
            ],
        };
        match mount_all(&[overlay], &merged) {
            Ok(()) => {
                mounted.push(merged.clone());
                return Ok(merged);
            }
            Err(e) => log::debug!("no overlay for a rw bind ({e}); copying"),
        }
    }
    let copy = dir.join("copy");
    copy_tree(path, &copy)?;
    Ok(copy)
}

/// Copies `src` (a file, symlink or directory) to `dst` with modes and owners.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
        return Ok(());
    }
    if ft.is_dir() {
        fs::create_dir(dst)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else if ft.is_file() {
        fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    } else {
        // Devices, fifos and sockets are not worth a bind mount's copy.
        return Ok(());
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    chown(dst, Some(meta.uid()), Some(meta.gid()))?;
    Ok(())
}

/// The cache directory of `m` (made on first use with its mode and owner, and seeded from
/// `from` when given) and its lock, taken as `m.sharing` asks.
fn cache_dir(engine: &Engine, m: &RunMount, from: Option<&Current>) -> Result<(PathBuf, File)> {
    // As in BuildKit, a cache seeded from somewhere else or made with other permissions is
    // another cache than the plain one with the same id.
    let mut name = format!("{}\0", m.id);
    if let Some(f) = from {
        name.push_str(&format!("from={}\0", f.key));
    }
    for (k, v) in [("mode", m.mode), ("uid", m.uid), ("gid", m.gid)] {
        if let Some(v) = v {
            name.push_str(&format!("{k}={v}\0"));
        }
    }
    let hex = Digest::of_bytes(name.as_bytes()).hex().to_owned();
    let dir = engine.root().join(CACHE_MOUNTS).join(&hex);
    use rustix::fs::FlockOperation::{LockExclusive, LockShared};
    let mode = if m.sharing == Sharing::Shared {
        LockShared
    } else {
        LockExclusive
    };
    loop {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        rustix::fs::flock(&lock, mode)?;
        // A prune may have removed the directory between our open and our lock.
        let same = fs::metadata(&lock_path)
            .ok()
            .zip(lock.metadata().ok())
            .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
        if !same {
            continue;
        }
        let data = dir.join("data");
        if !data.exists() {
            // Made by one build alone (flock drops a shared lock before it waits for the
            // exclusive one, so two shared users cannot deadlock here).
            rustix::fs::flock(&lock, LockExclusive)?;
            if !data.exists() {
                let fresh = dir.join(format!("data.{}", std::process::id()));
                let _ = fs::remove_dir_all(&fresh);
                match from {
                    Some(f) => {
                        let view = layer::View::new(engine, &f.layers)?;
                        copy_tree(view.path(), &fresh)?;
                    }
                    None => fs::create_dir(&fresh)?,
                }
                fs::set_permissions(&fresh, fs::Permissions::from_mode(m.mode.unwrap_or(0o755)))?;
                chown(&fresh, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))?;
                fs::write(dir.join("id"), &m.id)?;
                fs::rename(&fresh, &data)?;
            }
            // Again from the top, under the lock the mount asks for (a prune may come in
            // while the lock changes hands).
            continue;
        }
        return Ok((data, lock));
    }
}

/// Empties every cache mount no build is using; returns the bytes freed.
pub fn prune_cache_mounts(engine: &Engine) -> Result<u64> {
    let base = engine.root().join(CACHE_MOUNTS);
    let Ok(entries) = fs::read_dir(&base) else {
        return Ok(0);
    };
    let mut freed = 0;
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(lock) = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join("lock"))
        else {
            continue;
        };
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            log::info!("cache mount {} is in use; kept", dir.display());
            continue;
        }
        freed += du(&dir);
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(freed)
}

fn du(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}
