//! Confinement of tar entry paths to the target directory.
//!
//! A layer is untrusted input. Two classic escapes are refused here:
//! - `..` climbing above the root (`../../etc/cron.d/x`, CVE-2019-14271-style archives): paths
//!   are cleaned lexically, and one whose `..` would leave the root is an error.
//! - a symlink planted by an earlier entry and then written through (`a -> /etc`, then
//!   `a/passwd`; CVE-2018-15664 and the docker cp / moby breakout family): parents are opened
//!   one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` starting from an fd of
//!   the root, so no symlink is ever followed on the way to an entry, wherever it points.
//!
//! Entries are then created relative to the parent's fd (`mkdirat`, `openat`, `mknodat`,
//! `linkat`...), never through a path string the kernel would resolve again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::error::LayerError;
use super::tarwrite::lossy;

/// Cleans a tar path into its components: empty and `.` components dropped, `..` applied,
/// a leading `/` ignored (absolute paths are relative to the root). `None` if a `..` climbs
/// above the root.
pub(crate) fn clean(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Joins components with `/` for messages and set keys.
pub(crate) fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Opens directories below a root without following symlinks, keeping the fds of the last
/// directory chain: tar entries come mostly in tree order, so consecutive entries share it.
///
/// The cache stays valid without invalidation: after [`Resolver::dir`] it holds exactly the
/// chain to the directory returned, and callers only ever remove or replace entries *inside*
/// that directory, never a directory of the chain itself.
pub(crate) struct Resolver {
    root: OwnedFd,
    stack: Vec<(Vec<u8>, OwnedFd)>,
}

impl Resolver {
    pub fn open(root: &Path) -> io::Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(root, flags, Mode::empty())?;
        Ok(Resolver {
            root,
            stack: Vec::new(),
        })
    }

    #[cfg(test)]
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the directory `dirs` (components below the root). A missing component is created
    /// (mode 0755, root-owned, as docker does) when `create` is set; otherwise `Ok(None)`.
    /// A symlink or non-directory on the way is an error naming `entry`.
    pub fn dir(
        &mut self,
        dirs: &[&[u8]],
        create: bool,
        entry: &str,
    ) -> Result<Option<BorrowedFd<'_>>, LayerError> {
        let common = self
            .stack
            .iter()
            .zip(dirs)
            .take_while(|((name, _), comp)| name.as_slice() == **comp)
            .count();
        self.stack.truncate(common);
        for (i, comp) in dirs.iter().enumerate().skip(common) {
            let cur = self
                .stack
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = match open_dir(cur, comp) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    let op_err = |op, source| LayerError::Entry {
                        entry: entry.to_owned(),
                        op,
                        source,
                    };
                    match rustix::fs::mkdirat(cur, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(op_err("create parent directory", e.into())),
                    }
                    let fd = open_dir(cur, comp).map_err(|e| op_err("open parent directory", e))?;
                    // The umask may have taken bits away.
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                        .map_err(|e| op_err("chmod parent directory", e.into()))?;
                    fd
                }
                Err(e) => return Err(classify(cur, comp, e, &dirs[..=i], entry)),
            };
            self.stack.push((comp.to_vec(), fd));
        }
        Ok(Some(
            self.stack
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()),
        ))
    }
}

/// Turns a failed `openat(O_NOFOLLOW | O_DIRECTORY)` into the error a user understands.
fn classify(
    dir: BorrowedFd<'_>,
    name: &[u8],
    err: io::Error,
    parent: &[&[u8]],
    entry: &str,
) -> LayerError {
    let parent = lossy(&join(parent));
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            LayerError::SymlinkInPath {
                entry: entry.to_owned(),
                parent,
            }
        }
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            LayerError::NotADirectory {
                entry: entry.to_owned(),
                parent,
            }
        }
        _ => LayerError::Entry {
            entry: entry.to_owned(),
            op: "open parent directory",
            source: err,
        },
    }
}

/// What is at `name` in `dir`, without following a symlink. `None` if nothing is.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Removes `name` from `dir`, recursively if it is a directory, never following symlinks.
/// Removing what does not exist succeeds.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = open_dir(dir, name)?;
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory, `.` and `..` left out. Collected before the caller changes the
/// directory, since getdents over a directory being modified may skip entries.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Opens `name` (a directory) in `dir` for the caller, without following a symlink.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    open_dir(dir, name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn clean_confines_and_normalises() {
        let c = |s: &str| clean(s.as_bytes()).map(|v| lossy(&join(&v)));
        assert_eq!(c("./a//b/./c/"), Some("a/b/c".into()));
        assert_eq!(c("/etc/x"), Some("etc/x".into()));
        assert_eq!(c("a/../b"), Some("b".into()));
        assert_eq!(c("a/.."), Some("".into()));
        assert_eq!(c("../../etc/x"), None);
        assert_eq!(c("a/../../x"), None);
        assert_eq!(c("/.."), None);
    }

    #[test]
    fn resolver_refuses_symlinks_and_files_on_the_way() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("l")).unwrap();
        std::os::unix::fs::symlink("a", t.path().join("rel")).unwrap();
        fs::write(t.path().join("f"), "").unwrap();
        let mut r = Resolver::open(t.path()).unwrap();
        assert!(r.dir(&[b"a", b"b"], false, "e").unwrap().is_some());
        assert!(r.dir(&[b"a", b"missing"], false, "e").unwrap().is_none());
        for (dirs, want) in [
            (&[&b"l"[..]][..], "symlink"),
            (&[b"rel", b"b"], "symlink"),
            (&[b"f"], "not a directory"),
        ] {
            let err = r.dir(dirs, true, "x/y").unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.starts_with("layer entry \"x/y\""), "{err}");
        }
        assert!(r.dir(&[b"n", b"m"], true, "e").unwrap().is_some());
        assert!(t.path().join("n/m").is_dir());
    }

    #[test]
    fn remove_all_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(root.join("d/e/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/link")).unwrap();
        let r = Resolver::open(&root).unwrap();
        remove_all_at(r.root(), b"d").unwrap();
        remove_all_at(r.root(), b"absent").unwrap();
        assert!(!root.join("d").exists());
        assert!(outside.join("keep").exists());
    }
}
