//! `skiff cp`: copying between a container's filesystem and the host (or a tar stream), and
//! [`ContainerRoot`], the container's `/` as seen from the host, shared with `export`.
//!
//! Paths inside the container are resolved as in a chroot of it (see
//! `volume::inroot`): `..` stops at its root, absolute symlinks restart there, and a symlink
//! is never followed to the host's files. Writes go through skiff-snapshot's layer apply,
//! which confines every entry the same way. A running container is reached through
//! `/proc/<pid>/root`, so its volumes and binds are included; a stopped one through its
//! snapshot, mounted for the time of the copy, and a path under one of its volumes or binds
//! through that mount's host directory (symlinks inside a volume then resolve within the
//! volume). Copying into a read-only volume or rootfs is refused with docker's words.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, StatxFlags};
use skiff_snapshot::layer::{apply_layer, ApplyOptions, WhiteoutMode};

use super::container::store::{Container, ContainerStore, State};
use super::engine::Engine;
use super::error::{OpError, PlainError};
use super::volume::inroot::{self, TreeTar};

/// A container's root directory, opened for the time of one operation.
///
/// The root is held as an open directory fd and used through `/proc/self/fd/N`: if the
/// container's monitor unmounts the rootfs meanwhile (the container just ended), the fd
/// still reaches the same (detached) filesystem, so nothing is read from or written into
/// the empty mountpoint underneath.
pub struct ContainerRoot {
    fd: OwnedFd,
    path: PathBuf,
    /// A mount made for this operation, undone on drop.
    temp_mount: Option<PathBuf>,
}

/// The mount id of an open directory.
fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .ok()
        .filter(|s| StatxFlags::from_bits_retain(s.stx_mask).contains(StatxFlags::MNT_ID))
        .map(|s| s.stx_mnt_id)
}

impl ContainerRoot {
    fn from_fd(fd: OwnedFd, temp_mount: Option<PathBuf>) -> Self {
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        ContainerRoot {
            fd,
            path,
            temp_mount,
        }
    }

    /// The container's `/`: the running container's own root (`/proc/<pid>/root`, volumes
    /// included) when `with_mounts` and it runs; else its mounted rootfs; else its snapshot
    /// mounted on a temporary directory.
    pub fn open(engine: &Engine, c: &Container, state: &State, with_mounts: bool) -> Result<Self> {
        if with_mounts && state.running && state.pid > 0 {
            if let Ok(fd) = inroot::open_root(Path::new(&format!("/proc/{}/root", state.pid))) {
                return Ok(Self::from_fd(fd, None));
            }
        }
        if let Ok(fd) = inroot::open_root(&c.rootfs) {
            // Only a mounted rootfs: the bare mountpoint directory has nothing of the
            // container (the monitor may have unmounted it a moment ago).
            let parent = c.rootfs.parent().map(inroot::open_root);
            let parent_id = match parent {
                Some(Ok(p)) => mount_id(p.as_fd()),
                _ => None,
            };
            let id = mount_id(fd.as_fd());
            if id.is_some() && parent_id.is_some() && id != parent_id {
                return Ok(Self::from_fd(fd, None));
            }
        }
        let mounts = engine.snapshotter()?.mounts(&c.snapshot_key)?;
        let dir = engine
            .tmp_dir()?
            .join(format!("rootfs-{}-{}", c.short_id(), std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Err(e) = skiff_snapshot::mount::mount_all(&mounts, &dir) {
            let _ = fs::remove_dir(&dir);
            return Err(e.into());
        }
        match inroot::open_root(&dir) {
            Ok(fd) => Ok(Self::from_fd(fd, Some(dir))),
            Err(e) => {
                let _ = skiff_snapshot::mount::unmount_all(&dir);
                let _ = fs::remove_dir(&dir);
                Err(anyhow::Error::new(e).context(format!("opening {}", dir.display())))
            }
        }
    }

    /// The directory to treat as the container's `/` (a `/proc/self/fd` path of the open
    /// root; valid while `self` lives).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open root directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ContainerRoot {
    fn drop(&mut self) {
        if let Some(dir) = self.temp_mount.take() {
            if let Err(e) = skiff_snapshot::mount::unmount_all(&dir) {
                log::warn!("unmounting {}: {e}", dir.display());
                return;
            }
            let _ = fs::remove_dir(&dir);
        }
    }
}

/// Options of `cp`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpOptions {
    /// `-a`: keep uid/gid (otherwise files are owned by root in the container, and by the
    /// caller on the host).
    pub archive: bool,
    /// `-L`: follow a symlink given as the source.
    pub follow_link: bool,
}

/// Where `copy_from_container` puts what it copies.
pub enum CopyOutTarget<'a> {
    /// A tar stream (`-`).
    Tar(&'a mut dyn Write),
    /// A host path, with docker's rules for existing directories and files.
    Host(&'a Path),
}

/// Where `copy_to_container` takes what it copies from.
pub enum CopyInSource<'a> {
    /// A tar stream (`-`), extracted into the destination directory.
    Tar(&'a mut dyn Read),
    /// A host path.
    Host(&'a Path),
}

/// Container `name`'s record and reconciled state (shared with `export`).
pub(crate) fn open_container(engine: &Engine, name: &str) -> Result<(Container, State)> {
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(name)?;
    let state = super::container::reconcile::state(engine.root(), &store, &c)?;
    Ok((c, state))
}

fn not_found_in(path: &str, container: &str) -> anyhow::Error {
    OpError::not_found(format!(
        "Could not find the file {path} in container {container}"
    ))
    .into()
}

/// The last component of a container or host path as docker names it in an archive.
fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or("");
    match last {
        "" => "/".into(),
        l => l.to_owned(),
    }
}

/// The root to resolve `path` (a container path) in, and the path to resolve there. A
/// stopped container's volumes and binds are reached through their host directories (a
/// running one's are already in `/proc/<pid>/root`). Also says whether the mount holding the
/// path is writable (None: the container's own rootfs).
fn root_for(
    engine: &Engine,
    c: &Container,
    state: &State,
    path: &str,
) -> Result<(ContainerRoot, String, Option<bool>)> {
    let clean = super::volume::parse::clean_path(path);
    let mount = c
        .mounts
        .iter()
        .filter(|m| m.kind != "tmpfs" && !m.source.is_empty())
        .filter(|m| clean == m.destination || clean.starts_with(&format!("{}/", m.destination)))
        .max_by_key(|m| m.destination.len());
    let running = state.running && state.pid > 0;
    match mount {
        Some(m) if !running => {
            let rest = &clean[m.destination.len()..];
            let mut inner = if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            };
            // Keep what the trailing `/` or `/.` of the path means.
            if path.ends_with("/.") {
                inner = format!("{}/.", inner.trim_end_matches('/'));
            } else if path.ends_with('/') && !inner.ends_with('/') {
                inner.push('/');
            }
            let fd = inroot::open_root(Path::new(&m.source))
                .with_context(|| format!("opening the mount source {}", m.source))?;
            Ok((ContainerRoot::from_fd(fd, None), inner, Some(m.rw)))
        }
        _ => Ok((
            ContainerRoot::open(engine, c, state, true)?,
            path.to_owned(),
            mount.map(|m| m.rw),
        )),
    }
}

/// `cp CONTAINER:SRC DEST`.
pub fn copy_from_container(
    engine: &Engine,
    container: &str,
    src: &str,
    target: CopyOutTarget<'_>,
    opts: CpOptions,
) -> Result<()> {
    let (c, state) = open_container(engine, container)?;
    let src_abs = if src.starts_with('/') {
        src.to_owned()
    } else {
        format!("/{src}")
    };
    let (root, lookup, _) = root_for(engine, &c, &state, &src_abs)?;
    let rootfd = rustix::io::dup(root.fd())?;
    let missing = |e: io::Error| -> anyhow::Error {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => {
                not_found_in(&src_abs, container)
            }
            _ => anyhow::Error::new(e).context(format!("reading {src_abs} in the container")),
        }
    };
    // What to archive: an opened object (followed or a directory), or a name in a directory.
    enum Source {
        Opened(std::os::fd::OwnedFd, rustix::fs::Stat),
        Entry(std::os::fd::OwnedFd, String, rustix::fs::Stat),
    }
    let source = if opts.follow_link {
        let (fd, st) = inroot::open_followed(rootfd.as_fd(), &lookup).map_err(missing)?;
        Source::Opened(fd, st)
    } else {
        let loc = inroot::locate(rootfd.as_fd(), &lookup).map_err(missing)?;
        match loc.name {
            None => {
                let st = inroot::fstat(loc.parent.as_fd()).map_err(missing)?;
                Source::Opened(loc.parent, st)
            }
            Some(name) => {
                let st = inroot::lstat_at(loc.parent.as_fd(), &name).map_err(missing)?;
                Source::Entry(loc.parent, name, st)
            }
        }
    };
    let st = match &source {
        Source::Opened(_, st) | Source::Entry(_, _, st) => *st,
    };
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if src_abs.ends_with('/') && !is_dir {
        return Err(OpError::invalid(format!("not a directory: {src_abs}")).into());
    }
    let copy_contents = is_dir && (src_abs.ends_with("/.") || src_abs == "/");
    // Writes the source into `tar` with `name` as its top-level name ("" = its contents).
    // A tar stream keeps owners as docker's archive does; a host copy only with `-a`.
    let keep_owners = opts.archive || matches!(target, CopyOutTarget::Tar(_));
    let write_tree = |out: &mut dyn Write, name: &str| -> Result<()> {
        let mut tree = TreeTar::new(out, keep_owners);
        match &source {
            Source::Opened(fd, st) => {
                let fd = rustix::io::dup(fd.as_fd())?;
                if name.is_empty() {
                    tree.add_children(fd.as_fd(), "")?;
                } else {
                    tree.add_opened(fd, st, name)?;
                }
            }
            Source::Entry(dir, entry, _) => {
                if name.is_empty() {
                    let sub = inroot::open_subdir(dir.as_fd(), entry)?;
                    tree.add_children(sub.as_fd(), "")?;
                } else {
                    tree.add_entry(dir.as_fd(), entry, name)?;
                }
            }
        }
        tree.finish()?;
        Ok(())
    };
    match target {
        CopyOutTarget::Tar(out) => {
            let name = if copy_contents {
                ".".to_owned()
            } else {
                base_name(&src_abs)
            };
            write_tree(out, &name)
        }
        CopyOutTarget::Host(dest) => {
            let (dir, name) = host_destination(dest, &base_name(&src_abs), is_dir, copy_contents)?;
            extract_on_host(&dir, opts.archive, |w| write_tree(w, &name).map(|_| ())).map(|_| ())
        }
    }
}

/// Where on the host a copy lands: the directory to extract in and the top-level name
/// ("" = the source's contents go straight into the directory).
fn host_destination(
    dest: &Path,
    src_name: &str,
    src_is_dir: bool,
    copy_contents: bool,
) -> Result<(PathBuf, String)> {
    let dest_abs = std::path::absolute(dest).unwrap_or_else(|_| dest.to_owned());
    let trailing_slash = dest.as_os_str().to_string_lossy().ends_with('/');
    match fs::metadata(&dest_abs) {
        Ok(m) if m.is_dir() => {
            if copy_contents {
                Ok((dest_abs, String::new()))
            } else {
                Ok((dest_abs, src_name.to_owned()))
            }
        }
        Ok(_) => {
            if src_is_dir {
                return Err(PlainError::invalid("cannot copy directory").into());
            }
            let parent = dest_abs.parent().unwrap_or(Path::new("/")).to_owned();
            Ok((parent, file_name(&dest_abs)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dest_abs.parent().unwrap_or(Path::new("/")).to_owned();
            if trailing_slash && !src_is_dir {
                return Err(PlainError::invalid(format!(
                    "invalid output path: directory {:?} does not exist",
                    dest_abs.display().to_string()
                ))
                .into());
            }
            if !parent.is_dir() {
                return Err(PlainError::invalid(format!(
                    "invalid output path: directory {:?} does not exist",
                    parent.display().to_string()
                ))
                .into());
            }
            Ok((parent, file_name(&dest_abs)))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("{}", dest_abs.display()))),
    }
}

fn file_name(p: &Path) -> String {
    p.components()
        .next_back()
        .and_then(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Runs `produce` (writing a tar) on a thread and extracts the tar into the host directory
/// `dir` as docker's CLI does: symlinks that would point outside `dir` are refused
/// (`invalid symlink "PATH" -> "TARGET"`), owners are kept only with `archive`.
fn extract_on_host(
    dir: &Path,
    archive: bool,
    produce: impl FnOnce(&mut dyn Write) -> Result<()> + Send,
) -> Result<()> {
    let (reader, mut writer) = io::pipe()?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let r = produce(&mut writer);
            drop(writer);
            r
        });
        let extracted = extract_tar(reader, dir, archive);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("copy thread panicked")));
        // When the extraction refuses an entry it stops reading, and the producer then
        // fails on a broken pipe: the extraction's error is the one that explains.
        match (produced, extracted) {
            (_, Err(e)) if e.downcast_ref::<PlainError>().is_some() => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), extracted) => extracted,
        }
    })
}

fn extract_tar(reader: impl Read, dir: &Path, archive: bool) -> Result<()> {
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(archive);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_symlink() {
            let path = entry.path()?.into_owned();
            let target = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let full = dir.join(&path);
            let resolved = if target.is_absolute() {
                dir.join(target.strip_prefix("/").unwrap_or(&target))
            } else {
                full.parent().unwrap_or(dir).join(&target)
            };
            if !lexically_within(&resolved, dir) {
                return Err(PlainError::invalid(format!(
                    "invalid symlink {:?} -> {:?}",
                    full.display().to_string(),
                    target.display().to_string()
                ))
                .into());
            }
        }
        entry.unpack_in(dir)?;
    }
    Ok(())
}

/// Whether `p`, with `..` applied lexically, stays inside `dir` (Go's `filepath.Clean` +
/// prefix check, as docker's untar does).
fn lexically_within(p: &Path, dir: &Path) -> bool {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    let cleaned: PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
        .chain(out)
        .collect();
    cleaned.starts_with(dir)
}

/// `cp SRC CONTAINER:DEST`.
pub fn copy_to_container(
    engine: &Engine,
    container: &str,
    source: CopyInSource<'_>,
    dest: &str,
    opts: CpOptions,
) -> Result<()> {
    let (c, state) = open_container(engine, container)?;
    let dest_abs = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("/{dest}")
    };
    let (root, dest_abs, writable) = root_for(engine, &c, &state, &dest_abs)?;
    match writable {
        Some(false) => {
            return Err(OpError::invalid("mounted volume is marked read-only").into());
        }
        None if c.host_config.readonly_rootfs => {
            return Err(OpError::invalid("container rootfs is marked read-only").into());
        }
        _ => {}
    }
    let rootfd = rustix::io::dup(root.fd())?;
    // What the destination is: an existing directory (copy into it), an existing file
    // (replace it) or a new name in an existing directory.
    let dest_dir = match inroot::open_followed(rootfd.as_fd(), &dest_abs) {
        Ok((_, st)) => Some(FileType::from_raw_mode(st.st_mode) == FileType::Directory),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(OpError::invalid("extraction point is not a directory").into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("resolving {dest_abs}"))),
    };
    let clean_dest = super::volume::parse::clean_path(&dest_abs);
    let rel_dest = clean_dest.trim_start_matches('/').to_owned();
    if dest_dir.is_none() {
        let parent = match clean_dest.rsplit_once('/') {
            Some((p, _)) if !p.is_empty() => p.to_owned(),
            _ => "/".to_owned(),
        };
        match inroot::open_dir_in(rootfd.as_fd(), &parent) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(OpError::invalid("extraction point is not a directory").into())
            }
            Err(_) => return Err(not_found_in(&parent, container)),
        }
    }
    let join = |prefix: &str, name: &str| -> String {
        match (prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_owned(),
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}/{name}"),
        }
    };
    let archive = opts.archive;
    let (reader, mut writer) = io::pipe()?;
    let target = root.path().to_owned();
    std::thread::scope(|s| -> Result<()> {
        let applier = s.spawn(move || {
            apply_layer(
                reader,
                &target,
                &ApplyOptions {
                    whiteouts: WhiteoutMode::Remove,
                },
            )
        });
        let produced: Result<()> = (|| match source {
            CopyInSource::Tar(input) => {
                if dest_dir != Some(true) {
                    return Err(OpError::invalid(format!(
                        "destination \"{container}:{dest}\" must be a directory"
                    ))
                    .into());
                }
                retar(input, &mut writer, &rel_dest, archive)
            }
            CopyInSource::Host(path) => {
                let meta = fs::symlink_metadata(path)
                    .map_err(|e| PlainError::invalid(format!("{}: {e}", path.display())))?;
                let src_str = path.as_os_str().to_string_lossy();
                let (path, meta) = if opts.follow_link && meta.file_type().is_symlink() {
                    let real = fs::canonicalize(path)?;
                    let m = fs::symlink_metadata(&real)?;
                    (real, m)
                } else {
                    (path.to_owned(), meta)
                };
                let contents = meta.is_dir() && (src_str.ends_with("/.") || src_str == "/");
                let top = match dest_dir {
                    Some(true) if contents => rel_dest.clone(),
                    Some(true) => join(&rel_dest, &file_name(&path)),
                    Some(false) if meta.is_dir() => {
                        return Err(OpError::invalid(
                            "cannot copy a directory to a file".to_string(),
                        )
                        .into())
                    }
                    _ => rel_dest.clone(),
                };
                let parent = path.parent().unwrap_or(Path::new("/"));
                let parentfd = inroot::open_root(if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                })?;
                let mut tree = TreeTar::new(&mut writer, archive);
                tree.refuse_whiteouts = true;
                if contents {
                    let dirfd = inroot::open_root(&path)?;
                    tree.add_children(dirfd.as_fd(), &top)?;
                } else {
                    tree.add_entry(parentfd.as_fd(), &file_name(&path), &top)?;
                }
                tree.finish()?;
                Ok(())
            }
        })();
        drop(writer);
        let applied = applier.join().unwrap_or_else(|_| {
            Err(skiff_snapshot::layer::LayerError::Write {
                source: io::Error::other("apply thread panicked"),
            })
        });
        produced?;
        applied.with_context(|| format!("copying into {container}:{dest}"))?;
        Ok(())
    })
}

/// Copies the tar `input` to `out` with every name put under `prefix` (and hard link
/// targets too), owners reset to root unless `archive`; `.wh.` names are refused because the
/// layer apply would take them for whiteouts.
fn retar(input: &mut dyn Read, out: &mut dyn Write, prefix: &str, archive: bool) -> Result<()> {
    let mut ar = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    let under = |p: &Path| -> String {
        let s = p.to_string_lossy();
        let s = s.trim_start_matches("./").trim_start_matches('/');
        match (prefix.is_empty(), s.is_empty() || s == ".") {
            (_, true) => prefix.to_owned(),
            (true, false) => s.to_owned(),
            (false, false) => format!("{prefix}/{s}"),
        }
    };
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b".wh."))
        {
            return Err(OpError::invalid(format!(
                "{}: names starting with \".wh.\" cannot be copied into a container by skiff",
                path.display()
            ))
            .into());
        }
        let name = under(&path);
        if name.is_empty() {
            continue;
        }
        let mut h = entry.header().clone();
        if !archive {
            h.set_uid(0);
            h.set_gid(0);
        }
        let kind = h.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() {
                PathBuf::from(under(&target))
            } else {
                target
            };
            b.append_link(&mut h, &name, &target)?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            b.append_data(&mut h, &name, &mut entry)?;
        }
    }
    b.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_breakout_is_lexical() {
        let dir = Path::new("/tmp/x");
        assert!(lexically_within(Path::new("/tmp/x/a/../b"), dir));
        assert!(!lexically_within(
            Path::new("/tmp/x/../../../etc/shadow"),
            dir
        ));
        assert!(!lexically_within(Path::new("/tmp/xy"), dir));
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/etc/passwd"), "passwd");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/"), "/");
    }
}
