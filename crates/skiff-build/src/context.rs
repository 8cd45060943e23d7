//! COPY and ADD sources: finding them in the build context (or in another stage's root
//! filesystem), hashing their content for the cache, and copying them into a root filesystem
//! with docker's rules.
//!
//! The hash covers, for every file under each source: its path below the source, type,
//! permission bits, owner, size, link target and content — never its mtime, so a `touch`
//! keeps the cache and a `chmod` or one changed byte does not.
//!
//! Destination rules (docker's `COPY`): a destination ending in `/`, or an existing directory,
//! receives each source under its base name; a directory source always copies its contents,
//! not itself. Several sources need a directory destination. New files belong to 0:0 unless
//! `--chown`; modes and mtimes come from the source.

use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use skiff_image::digest::Hasher;

use crate::ignore::Ignore;

/// Why a COPY or ADD failed; displays without the `COPY failed: ` prefix the caller adds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("no source files were specified")]
    NoSources,
    #[error("Forbidden path outside the build context: {0} ()")]
    OutsideContext(String),
    #[error("When using {0} with more than one source file, the destination must be a directory and end with a /")]
    DestNotDir(&'static str),
    #[error("cannot copy to non-directory: {0}")]
    NotADirectory(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("extracting {path}: {message}")]
    Extract { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where sources are read from: the build context (with its `.dockerignore`) or a root
/// filesystem (another stage, an image), where symlinks resolve inside it.
#[derive(Debug, Clone, Copy)]
pub struct SourceRoot<'a> {
    pub dir: &'a Path,
    pub ignore: Option<&'a Ignore>,
    /// `--exclude` patterns, matched against paths below each source.
    pub excludes: Option<&'a Ignore>,
}

/// The hash of a COPY's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDigest {
    /// Hex digest of everything copied.
    pub hash: String,
    /// docker's `file:<hex>` / `dir:<hex>` / `multi:<hex>`.
    pub desc: String,
    /// `path=hex` per entry, in walk order.
    pub files: Vec<String>,
    /// The mtime (seconds, nanoseconds) of each entry of `files`: not part of the hash (a
    /// `touch` keeps the cache), but copied, so an incremental copy compares it too.
    pub mtimes: Vec<(i64, i64)>,
}

/// One source found.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is on disk (symlinks of the path resolved).
    pub path: PathBuf,
    /// Its path relative to the source root.
    pub rel: String,
    pub is_dir: bool,
    /// What `COPY --parents` keeps of `rel`: the part after a `/./` in the source as
    /// written, else all of it.
    pub kept: String,
}

impl SourceRoot<'_> {
    fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.is_some_and(|i| i.excludes(rel))
    }

    /// Finds the sources `srcs` (glob patterns allowed).
    pub fn resolve(&self, srcs: &[String]) -> Result<Vec<Source>, CopyError> {
        let mut out = Vec::new();
        for src in srcs {
            let rel = clean_rel(src).ok_or_else(|| CopyError::OutsideContext(src.clone()))?;
            // rsync's `--relative` pivot: the directories before `/./` are not kept.
            let dropped = src
                .find("/./")
                .and_then(|i| clean_rel(&src[..i]))
                .map_or(0, |p| p.split('/').filter(|c| !c.is_empty()).count());
            let kept = |rel: &str| rel.split('/').skip(dropped).collect::<Vec<_>>().join("/");
            if rel.contains(['*', '?', '[']) {
                let found = self.glob(&rel)?;
                out.extend(found.into_iter().map(|f| Source {
                    kept: kept(&f.rel),
                    ..f
                }));
                continue;
            }
            if self.excluded(&rel) {
                return Err(CopyError::NotFound(src.clone()));
            }
            let path = resolve_in_root(self.dir, &rel, true)
                .map_err(|_| CopyError::NotFound(src.clone()))?;
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => return Err(CopyError::NotFound(src.clone())),
            };
            out.push(Source {
                path,
                kept: kept(&rel),
                rel,
                is_dir: meta.is_dir(),
            });
        }
        if out.is_empty() {
            return Err(CopyError::NoSources);
        }
        Ok(out)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<Source>, CopyError> {
        let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
        let mut current: Vec<String> = vec![String::new()];
        for part in parts {
            let mut next = Vec::new();
            for base in &current {
                let dir = if base.is_empty() {
                    self.dir.to_owned()
                } else {
                    self.dir.join(base)
                };
                if !part.contains(['*', '?', '[']) {
                    let rel = join_rel(base, part);
                    if fs::symlink_metadata(self.dir.join(&rel)).is_ok() {
                        next.push(rel);
                    }
                    continue;
                }
                let Ok(entries) = fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect();
                names.sort();
                for name in names {
                    if crate::ignore::glob_component(part, &name) {
                        next.push(join_rel(base, &name));
                    }
                }
            }
            current = next;
        }
        let mut out = Vec::new();
        for rel in current {
            if self.excluded(&rel) {
                continue;
            }
            let path = resolve_in_root(self.dir, &rel, true).map_err(io_err(self.dir))?;
            let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
            out.push(Source {
                path,
                kept: rel.clone(),
                rel,
                is_dir,
            });
        }
        Ok(out)
    }

    /// Every entry under `src` that is not excluded, sorted, as (relative path inside the
    /// source, on-disk path, lstat).
    pub fn walk(&self, src: &Source) -> Result<Vec<(String, PathBuf, Metadata)>, CopyError> {
        let mut out = Vec::new();
        if !src.is_dir {
            let meta = fs::metadata(&src.path).map_err(io_err(&src.path))?;
            out.push((String::new(), src.path.clone(), meta));
            return Ok(out);
        }
        let meta = fs::metadata(&src.path).map_err(io_err(&src.path))?;
        out.push((String::new(), src.path.clone(), meta));
        self.walk_dir(&src.path, &src.rel, "", &mut out)?;
        Ok(out)
    }

    fn walk_dir(
        &self,
        dir: &Path,
        ctx_rel: &str,
        inner: &str,
        out: &mut Vec<(String, PathBuf, Metadata)>,
    ) -> Result<(), CopyError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let c_rel = join_rel(ctx_rel, &name);
            let i_rel = join_rel(inner, &name);
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let excluded =
                self.excluded(&c_rel) || self.excludes.is_some_and(|e| e.excludes(&i_rel));
            if excluded && !(meta.is_dir() && self.ignore.is_some_and(Ignore::has_exceptions)) {
                continue;
            }
            let is_dir = meta.is_dir();
            if !excluded {
                out.push((i_rel.clone(), path.clone(), meta));
            }
            if is_dir {
                self.walk_dir(&path, &c_rel, &i_rel, out)?;
            }
        }
        Ok(())
    }

    /// The content hash of `sources`, docker's description of them (`file:<hex>`,
    /// `dir:<hex>`, `multi:<hex>`), and `path=hex` for each file (what `--explain-cache`
    /// names when one changed).
    pub fn digest(&self, sources: &[Source]) -> Result<SourceDigest, CopyError> {
        self.digest_with(sources, None)
    }

    /// [`SourceRoot::digest`], taking file content digests from `cache` where the file's
    /// stat says it did not change since (and recording the ones it computes).
    pub fn digest_with(
        &self,
        sources: &[Source],
        cache: Option<&dyn ContentCache>,
    ) -> Result<SourceDigest, CopyError> {
        let mut all = Hasher::new();
        let mut files = Vec::new();
        let mut mtimes = Vec::new();
        let mut single = None;
        for src in sources {
            let mut h = Hasher::new();
            for (rel, path, meta) in self.walk(src)? {
                let mut one = Hasher::new();
                hash_entry(&mut one, &rel, &path, &meta, cache)?;
                let d = one.finish();
                h.update(d.hex().as_bytes());
                let shown = if rel.is_empty() {
                    src.rel.clone()
                } else {
                    join_rel(&src.rel, &rel)
                };
                files.push(format!("{shown}={}", d.hex()));
                mtimes.push((meta.mtime(), meta.mtime_nsec()));
            }
            let d = h.finish();
            all.update(src.rel.as_bytes());
            all.update(b"\0");
            all.update(d.hex().as_bytes());
            all.update(b"\n");
            let kind = if src.is_dir { "dir" } else { "file" };
            single = Some((d.hex().to_owned(), format!("{kind}:{}", d.hex())));
        }
        let (hash, desc) = match (sources.len(), single) {
            (1, Some(s)) => s,
            _ => {
                let d = all.finish();
                (d.hex().to_owned(), format!("multi:{}", d.hex()))
            }
        };
        Ok(SourceDigest {
            hash,
            desc,
            files,
            mtimes,
        })
    }
}

/// Content digests of files by their stat, kept between builds so an unchanged context is
/// not read again (a `touch` changes the stat, so the file is read, and its hash is the same).
pub trait ContentCache {
    /// The hex content digest recorded for `path` with this stat.
    fn get(&self, path: &Path, meta: &Metadata) -> Option<String>;
    /// Records the content digest of `path` with this stat.
    fn put(&self, path: &Path, meta: &Metadata, hex: &str);
}

/// The part of a file's stat that changes when its content may have: device, inode, size,
/// mtime and ctime (both with nanoseconds).
pub fn stat_key(meta: &Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

fn content_digest(
    path: &Path,
    meta: &Metadata,
    cache: Option<&dyn ContentCache>,
) -> Result<String, CopyError> {
    if let Some(hex) = cache.and_then(|c| c.get(path, meta)) {
        return Ok(hex);
    }
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex = h.finish().hex().to_owned();
    if let Some(c) = cache {
        c.put(path, meta, &hex);
    }
    Ok(hex)
}

fn hash_entry(
    h: &mut Hasher,
    rel: &str,
    path: &Path,
    meta: &Metadata,
    cache: Option<&dyn ContentCache>,
) -> Result<(), CopyError> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else {
        'o'
    };
    h.update(
        format!(
            "{rel}\0{kind}\0{:o}\0{}:{}\0{}\0",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            if ft.is_file() { meta.len() } else { 0 }
        )
        .as_bytes(),
    );
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(io_err(path))?;
        h.update(target.as_os_str().as_bytes());
    } else if ft.is_file() {
        h.update(content_digest(path, meta, cache)?.as_bytes());
    }
    h.update(b"\n");
    Ok(())
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// A source path made relative to its root; `None` when `..` leaves it.
fn clean_rel(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `rel` inside `root` with every symlink on the way resolved as if `root` were `/`
/// (absolute targets restart at `root`, `..` stops there); the last component is followed
/// only when `follow_last`.
pub fn resolve_in_root(root: &Path, rel: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut stack: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(str::to_owned)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = stack.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        for r in &resolved {
            candidate.push(r);
        }
        candidate.push(&c);
        let last = stack.is_empty();
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(&candidate)?;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    resolved.clear();
                }
                for part in t.split('/').filter(|p| !p.is_empty() && *p != ".").rev() {
                    stack.push(part.to_owned());
                }
            }
            _ => resolved.push(c),
        }
    }
    let mut out = root.to_path_buf();
    for r in resolved {
        out.push(r);
    }
    Ok(out)
}

/// How copied files are written.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// uid and gid of everything written; 0:0 when `None`.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: permission bits of everything written.
    pub chmod: Option<u32>,
    /// ADD: extract local tar archives (compressed or not) instead of copying them.
    pub extract_archives: bool,
    /// `COPY` or `ADD`, for messages.
    pub instruction: &'static str,
    /// `COPY --parents`: each source lands at `dest/<its kept path>` (dest is a directory).
    pub parents: bool,
}

/// Copies `sources` (found in `from`) to `dest` (absolute, inside `rootfs`).
pub fn copy_into(
    rootfs: &Path,
    from: &SourceRoot<'_>,
    sources: &[Source],
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    let dest_rel = dest.trim_start_matches('/');
    let wants_dir = dest.ends_with('/');
    let dest_path = resolve_in_root(rootfs, dest_rel, true).map_err(io_err(rootfs))?;
    let exists_dir = fs::metadata(&dest_path)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let dir_mode = wants_dir || exists_dir;
    if sources.len() > 1 && !wants_dir {
        return Err(CopyError::DestNotDir(opts.instruction));
    }
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    if opts.parents {
        return copy_with_parents(rootfs, from, sources, dest_rel, opts);
    }
    for src in sources {
        if src.is_dir {
            mkdir_all(rootfs, dest_rel, uid, gid)?;
            let target = resolve_in_root(rootfs, dest_rel, true).map_err(io_err(rootfs))?;
            copy_tree(from, src, &target, opts)?;
            continue;
        }
        if opts.extract_archives && is_archive(&src.path) {
            mkdir_all(rootfs, dest_rel, uid, gid)?;
            let target = resolve_in_root(rootfs, dest_rel, true).map_err(io_err(rootfs))?;
            extract(&src.path, &target)?;
            continue;
        }
        let file_rel = if dir_mode {
            mkdir_all(rootfs, dest_rel, uid, gid)?;
            let base = Path::new(&src.rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            join_rel(dest_rel.trim_end_matches('/'), &base)
        } else {
            if let Some(parent) = Path::new(dest_rel).parent() {
                mkdir_all(rootfs, &parent.to_string_lossy(), uid, gid)?;
            }
            dest_rel.to_owned()
        };
        let target = resolve_in_root(rootfs, &file_rel, false).map_err(io_err(rootfs))?;
        let meta = fs::metadata(&src.path).map_err(io_err(&src.path))?;
        write_entry(&src.path, &meta, &target, opts, true)?;
    }
    Ok(())
}

/// Replays part of a [`copy_into`] on `upper`, an overlay upper directory that holds what an
/// earlier `copy_into` of the same sources (same entries, same directories) wrote: rewrites
/// the entries named in `changed` (paths as [`SourceDigest::files`] shows them), which must
/// be files or symlinks there already. Returns the paths written, or `None` when the copy
/// cannot be replayed that way (several sources, `--parents`, archives, a directory or a new
/// entry among the changes, a destination that only resolves through the lower layers); the
/// caller then copies everything as usual.
pub fn recopy_changed(
    upper: &Path,
    sources: &[Source],
    dest: &str,
    opts: &CopyOptions,
    changed: &[String],
) -> Result<Option<Vec<PathBuf>>, CopyError> {
    let [src] = sources else {
        return Ok(None);
    };
    if opts.parents || opts.extract_archives {
        return Ok(None);
    }
    // Only what the earlier copy left in the upper directory: a non-directory entry there.
    let replaceable = |target: &Path| {
        fs::symlink_metadata(target).is_ok_and(|m| m.is_file() || m.file_type().is_symlink())
    };
    let dest_rel = dest.trim_start_matches('/');
    let mut written = Vec::new();
    if src.is_dir {
        let Ok(target_root) = resolve_in_root(upper, dest_rel, true) else {
            return Ok(None);
        };
        if !fs::symlink_metadata(&target_root).is_ok_and(|m| m.is_dir()) {
            return Ok(None);
        }
        let prefix = format!("{}/", src.rel);
        for shown in changed {
            let rel = if src.rel.is_empty() {
                shown.as_str()
            } else {
                match shown.strip_prefix(&prefix) {
                    Some(r) => r,
                    None => return Ok(None),
                }
            };
            if rel.is_empty()
                || rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Ok(None);
            }
            let path = src.path.join(rel);
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let target = target_root.join(rel);
            if !(meta.is_file() || meta.file_type().is_symlink()) || !replaceable(&target) {
                return Ok(None);
            }
            written.push((path, meta, target));
        }
        for (path, meta, target) in &written {
            write_entry(path, meta, target, opts, false)?;
        }
        return Ok(Some(written.into_iter().map(|w| w.2).collect()));
    }
    if changed != [src.rel.clone()] {
        return Ok(None);
    }
    let Ok(dest_path) = resolve_in_root(upper, dest_rel, true) else {
        return Ok(None);
    };
    let exists_dir = fs::metadata(&dest_path).is_ok_and(|m| m.is_dir());
    let file_rel = if dest.ends_with('/') || exists_dir {
        let base = Path::new(&src.rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        join_rel(dest_rel.trim_end_matches('/'), &base)
    } else {
        dest_rel.to_owned()
    };
    let Ok(target) = resolve_in_root(upper, &file_rel, false) else {
        return Ok(None);
    };
    if !replaceable(&target) {
        return Ok(None);
    }
    let meta = fs::metadata(&src.path).map_err(io_err(&src.path))?;
    if !meta.is_file() {
        return Ok(None);
    }
    write_entry(&src.path, &meta, &target, opts, true)?;
    Ok(Some(vec![target]))
}

/// `COPY --parents`: as `cp --parents` and `rsync --relative`, each source keeps its
/// directories (those after a `/./` pivot) below `dest_rel`, which is always a directory.
fn copy_with_parents(
    rootfs: &Path,
    from: &SourceRoot<'_>,
    sources: &[Source],
    dest_rel: &str,
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    let dest_dir = dest_rel.trim_end_matches('/');
    for src in sources {
        let rel = join_rel(dest_dir, &src.kept);
        if src.is_dir {
            mkdir_all(rootfs, &rel, uid, gid)?;
            let target = resolve_in_root(rootfs, &rel, true).map_err(io_err(rootfs))?;
            copy_tree(from, src, &target, opts)?;
            continue;
        }
        match Path::new(&rel).parent() {
            Some(parent) => mkdir_all(rootfs, &parent.to_string_lossy(), uid, gid)?,
            None => mkdir_all(rootfs, dest_dir, uid, gid)?,
        }
        let target = resolve_in_root(rootfs, &rel, false).map_err(io_err(rootfs))?;
        let meta = fs::metadata(&src.path).map_err(io_err(&src.path))?;
        write_entry(&src.path, &meta, &target, opts, true)?;
    }
    Ok(())
}

fn copy_tree(
    from: &SourceRoot<'_>,
    src: &Source,
    target_root: &Path,
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    for (rel, path, meta) in from.walk(src)? {
        if rel.is_empty() {
            // The source directory itself: its contents land in the (existing) destination.
            continue;
        }
        // Inside the copied tree nothing is followed: as docker's untar does, an entry
        // replaces whatever is in its way (a symlink included) unless both are directories.
        let target = target_root.join(&rel);
        write_entry(&path, &meta, &target, opts, false)?;
    }
    Ok(())
}

/// Writes one entry at `target` (replacing a non-directory already there).
fn write_entry(
    src: &Path,
    meta: &Metadata,
    target: &Path,
    opts: &CopyOptions,
    follow: bool,
) -> Result<(), CopyError> {
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    let ft = meta.file_type();
    let mut exists_as_dir = false;
    if let Ok(existing) = fs::symlink_metadata(target) {
        if existing.is_dir() && ft.is_dir() {
            exists_as_dir = true;
        } else if existing.is_dir() {
            fs::remove_dir_all(target).map_err(io_err(target))?;
        } else {
            fs::remove_file(target).map_err(io_err(target))?;
        }
    }
    let mode = opts.chmod.unwrap_or(meta.mode() & 0o7777);
    if ft.is_dir() {
        if !exists_as_dir {
            fs::create_dir(target).map_err(io_err(target))?;
        }
        rustix::fs::chown(
            target,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| CopyError::Io {
            path: target.to_owned(),
            source: e.into(),
        })?;
        fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(io_err(target))?;
    } else if ft.is_symlink() && !follow {
        let link = fs::read_link(src).map_err(io_err(src))?;
        std::os::unix::fs::symlink(&link, target).map_err(io_err(target))?;
        rustix::fs::chownat(
            rustix::fs::CWD,
            target,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| CopyError::Io {
            path: target.to_owned(),
            source: e.into(),
        })?;
    } else if ft.is_file() || (ft.is_symlink() && follow) {
        // A followed symlink is copied as what it points to, with that file's size.
        let data_meta;
        let meta = if ft.is_symlink() {
            data_meta = fs::metadata(src).map_err(io_err(src))?;
            &data_meta
        } else {
            meta
        };
        // Owner, mode and mtime are set on the open file (see filecopy).
        return crate::filecopy::copy_regular_file(src, meta, target, uid, gid, mode)
            .map_err(io_err(target));
    } else {
        // Devices, fifos and sockets in a build context are skipped, as docker's tar does.
        return Ok(());
    }
    set_mtime(target, meta)?;
    Ok(())
}

fn set_mtime(target: &Path, meta: &Metadata) -> Result<(), CopyError> {
    let t = rustix::fs::Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec() as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        target,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| CopyError::Io {
        path: target.to_owned(),
        source: e.into(),
    })
}

/// Creates `rel` (and its parents) inside `rootfs`, new directories 0755 owned by uid:gid.
fn mkdir_all(rootfs: &Path, rel: &str, uid: u32, gid: u32) -> Result<(), CopyError> {
    let mut so_far = String::new();
    for c in Path::new(rel).components() {
        let Component::Normal(name) = c else { continue };
        so_far = join_rel(&so_far, &name.to_string_lossy());
        let p = resolve_in_root(rootfs, &so_far, true).map_err(io_err(rootfs))?;
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(CopyError::NotADirectory(format!("/{so_far}"))),
            Err(_) => {
                fs::create_dir(&p).map_err(io_err(&p))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(io_err(&p))?;
                rustix::fs::chown(
                    &p,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| CopyError::Io {
                    path: p.clone(),
                    source: e.into(),
                })?;
            }
        }
    }
    Ok(())
}

/// Whether `path` is a tar archive, possibly compressed (what ADD extracts).
fn is_archive(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok((_, mut r)) = skiff_snapshot::layer::decompressing_reader(BufReader::new(f)) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut got = 0;
    while got < block.len() {
        match r.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &block[257..262] == b"ustar"
}

fn extract(archive: &Path, target: &Path) -> Result<(), CopyError> {
    let f = File::open(archive).map_err(io_err(archive))?;
    skiff_snapshot::layer::apply_layer(
        BufReader::new(f),
        target,
        &skiff_snapshot::layer::ApplyOptions {
            whiteouts: skiff_snapshot::layer::WhiteoutMode::Remove,
        },
    )
    .map_err(|e| CopyError::Extract {
        path: archive.to_owned(),
        message: e.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_mtime_but_not_mode_or_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"x").unwrap();
        let root = SourceRoot {
            dir: dir.path(),
            ignore: None,
            excludes: None,
        };
        let srcs = root.resolve(&["a".into()]).unwrap();
        let d = root.digest(&srcs).unwrap();
        let h1 = d.hash.clone();
        assert!(d.desc.starts_with("file:"));
        assert_eq!(
            d.files,
            [format!("a={}", d.files[0].split_once('=').unwrap().1)]
        );
        let t = rustix::fs::Timespec {
            tv_sec: 12345,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &f,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        assert_eq!(root.digest(&srcs).unwrap().hash, h1);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let h2 = root.digest(&srcs).unwrap().hash;
        assert_ne!(h2, h1);
        fs::write(&f, b"y").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(root.digest(&srcs).unwrap().hash, h2);
    }

    #[test]
    fn missing_and_ignored_sources_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), b"x").unwrap();
        let ig = Ignore::parse("secret\n");
        let root = SourceRoot {
            dir: dir.path(),
            ignore: Some(&ig),
            excludes: None,
        };
        let e = root.resolve(&["x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file not found in build context or excluded by .dockerignore: stat x: file does not exist"
        );
        assert!(matches!(
            root.resolve(&["secret".into()]),
            Err(CopyError::NotFound(_))
        ));
        assert!(matches!(
            root.resolve(&["../x".into()]),
            Err(CopyError::OutsideContext(_))
        ));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", dir.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", dir.path().join("up")).unwrap();
        assert_eq!(
            resolve_in_root(dir.path(), "abs/x", true).unwrap(),
            dir.path().join("real/x")
        );
        assert_eq!(
            resolve_in_root(dir.path(), "up/etc", true).unwrap(),
            dir.path().join("etc")
        );
    }
}
