//! Confinement of tar entry paths to the target directory.
//!
//! A layer is untrusted input, applied the way docker applies it inside a chroot of the
//! target: symlinks on the way to an entry are followed, but can never lead outside the root.
//! - `..` in an entry's name is applied lexically first, and a name whose `..` would climb
//!   above the root (`../../etc/cron.d/x`, CVE-2019-14271-style archives) is an error.
//! - The parent directories of an entry (and of a hardlink's target) are then opened one
//!   component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` starting from an fd of the
//!   root, so the kernel never follows a symlink. A symlink found on the way is read
//!   (`readlinkat`) and its target walked the same way, relative to the layer root rather than
//!   the host's: an absolute target restarts at the root, and `..` never climbs above it (as
//!   `openat2(RESOLVE_IN_ROOT)` and `filepath-securejoin` do). A symlink planted by an
//!   earlier entry (`a -> /etc`, then `a/passwd`; CVE-2018-15664 and the docker cp / moby
//!   breakout family) thus leads to `<root>/etc/passwd`, never to the host's. More than
//!   [`MAX_SYMLINKS`] symlinks in one resolution is a loop, and an error.
//! - The last component of an entry is never followed: an entry replaces a symlink at its
//!   path, it does not write through it.
//!
//! Entries are then created relative to the parent's fd (`mkdirat`, `openat`, `mknodat`,
//! `linkat`...), never through a path string the kernel would resolve again.
//!
//! `openat2(RESOLVE_IN_ROOT)` would resolve a whole path in one call, but the walk is needed
//! anyway: it creates the missing parents, names the component at fault in errors, and keeps
//! the chain of directory fds that consecutive entries share.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::error::LayerError;
use super::tarwrite::lossy;

/// Symlinks followed at most while resolving one path: Linux's `MAXSYMLINKS`, beyond which
/// path resolution fails with `ELOOP`.
pub(crate) const MAX_SYMLINKS: usize = 40;

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

/// Opens directories below a root, following symlinks inside the root only (see the module
/// documentation), and keeps the fds of the last directory chain: tar entries come mostly in
/// tree order, so consecutive entries share it.
///
/// The chain is only reused when it was resolved without following a symlink. Then every fd
/// of it is the directory at its very path, and the cache stays valid without invalidation:
/// after [`Resolver::dir`] it holds exactly the chain to the directory returned, and callers
/// only ever remove or replace entries *inside* that directory, never an ancestor of it. A
/// chain that went through a symlink could have gone through what the caller then changes
/// (`x -> d/e/..`, then an entry replacing `d/e`), so the next path is resolved afresh.
pub(crate) struct Resolver {
    root: OwnedFd,
    /// The directories from the root (excluded) to the last one resolved.
    fds: Vec<OwnedFd>,
    /// The names of `fds`, when `reusable`.
    names: Vec<Vec<u8>>,
    /// The last resolution followed no symlink: `names` and `fds` match the path.
    reusable: bool,
}

impl Resolver {
    pub fn open(root: &Path) -> io::Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(root, flags, Mode::empty())?;
        Ok(Resolver {
            root,
            fds: Vec::new(),
            names: Vec::new(),
            reusable: true,
        })
    }

    #[cfg(test)]
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the directory `dirs` (cleaned components below the root), following symlinks
    /// inside the root. A missing component of `dirs` itself is created (mode 0755,
    /// root-owned, as docker does) when `create` is set; otherwise, or when what is missing is
    /// the target of a symlink, `Ok(None)` without `create`. Errors name `entry` and the
    /// component of `dirs` at fault: a non-directory, a symlink loop, a dangling symlink (when
    /// creating: docker does not create directories through one either).
    pub fn dir(
        &mut self,
        dirs: &[&[u8]],
        create: bool,
        entry: &str,
    ) -> Result<Option<BorrowedFd<'_>>, LayerError> {
        let common = if self.reusable {
            self.names
                .iter()
                .zip(dirs)
                .take_while(|(name, comp)| name.as_slice() == **comp)
                .count()
        } else {
            0
        };
        self.fds.truncate(common);
        self.names.truncate(common);
        // Until the walk completes: an error leaves the chain partial.
        self.reusable = false;
        let parent = |at: usize| lossy(&join(&dirs[..=at]));

        // Components of symlink targets still to walk, the next one last.
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut next = common;
        // The component of `dirs` being resolved (through the symlinks it leads to).
        let mut at = common;
        let mut hops = 0;
        loop {
            let owned;
            let (comp, from_link): (&[u8], bool) = if let Some(c) = pending.pop() {
                owned = c;
                (&owned, true)
            } else if let Some(c) = dirs.get(next) {
                at = next;
                next += 1;
                (c, false)
            } else {
                break;
            };
            if from_link {
                match comp {
                    b"" | b"." => continue,
                    // In the root, `..` is the root: the chain never climbs above it.
                    b".." => {
                        self.fds.pop();
                        continue;
                    }
                    _ => {}
                }
            }
            let cur = self.fds.last().map_or(self.root.as_fd(), AsFd::as_fd);
            let err = match open_dir(cur, comp) {
                Ok(fd) => {
                    self.fds.push(fd);
                    if hops == 0 {
                        self.names.push(comp.to_vec());
                    }
                    continue;
                }
                Err(e) => e,
            };
            if err.kind() == io::ErrorKind::NotFound {
                if !create {
                    self.reusable = hops == 0;
                    return Ok(None);
                }
                if from_link {
                    return Err(LayerError::DanglingSymlink {
                        entry: entry.to_owned(),
                        parent: parent(at),
                    });
                }
                let fd = create_dir(cur, comp, entry)?;
                self.fds.push(fd);
                if hops == 0 {
                    self.names.push(comp.to_vec());
                }
                continue;
            }
            let ft = match rustix::fs::statat(cur, comp, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(_) => FileType::Unknown,
            };
            match ft {
                FileType::Symlink => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(LayerError::SymlinkLoop {
                            entry: entry.to_owned(),
                            parent: parent(at),
                        });
                    }
                    let target = rustix::fs::readlinkat(cur, comp, Vec::new())
                        .map_err(|e| LayerError::Entry {
                            entry: entry.to_owned(),
                            op: "read parent symlink",
                            source: e.into(),
                        })?
                        .into_bytes();
                    if target.starts_with(b"/") {
                        self.fds.clear();
                    }
                    pending.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                }
                FileType::Directory | FileType::Unknown => {
                    return Err(LayerError::Entry {
                        entry: entry.to_owned(),
                        op: "open parent directory",
                        source: err,
                    })
                }
                _ => {
                    return Err(LayerError::NotADirectory {
                        entry: entry.to_owned(),
                        parent: parent(at),
                    })
                }
            }
        }
        self.reusable = hops == 0;
        Ok(Some(self.fds.last().map_or(self.root.as_fd(), AsFd::as_fd)))
    }
}

/// Creates the missing parent directory `name` in `dir` and opens it.
fn create_dir(dir: BorrowedFd<'_>, name: &[u8], entry: &str) -> Result<OwnedFd, LayerError> {
    let op_err = |op, source| LayerError::Entry {
        entry: entry.to_owned(),
        op,
        source,
    };
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(op_err("create parent directory", e.into())),
    }
    let fd = open_dir(dir, name).map_err(|e| op_err("open parent directory", e))?;
    // The umask may have taken bits away.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
        .map_err(|e| op_err("chmod parent directory", e.into()))?;
    Ok(fd)
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

    /// The inode of the directory the resolver returns for `dirs`, `None` if it has none.
    fn ino(r: &mut Resolver, dirs: &[&[u8]], create: bool) -> Option<u64> {
        let fd = r.dir(dirs, create, "e").unwrap()?;
        Some(rustix::fs::fstat(fd).unwrap().st_ino)
    }

    fn ino_of(p: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        Some(fs::symlink_metadata(p).unwrap().ino())
    }

    #[test]
    fn resolver_follows_symlinks_inside_the_root() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        let root = t.path().join("root");
        let p = |s: &str| root.join(s);
        fs::create_dir_all(p("a/b")).unwrap();
        fs::create_dir_all(p("usr/lib")).unwrap();
        symlink("usr/lib", p("lib")).unwrap();
        symlink("a", p("rel")).unwrap();
        symlink("/a/b", p("abs")).unwrap();
        symlink("../../../../a", p("a/b/up")).unwrap();
        symlink("b/../../rel/.//b/", p("a/twisty")).unwrap();
        symlink(&outside, p("out")).unwrap();
        symlink("missing/dir", p("dangling")).unwrap();
        fs::write(p("f"), "").unwrap();
        symlink("f", p("to-file")).unwrap();
        let mut r = Resolver::open(&root).unwrap();

        assert_eq!(ino(&mut r, &[b"a", b"b"], false), ino_of(&p("a/b")));
        assert_eq!(ino(&mut r, &[b"a", b"missing"], false), None);
        assert_eq!(ino(&mut r, &[b"lib"], false), ino_of(&p("usr/lib")));
        assert_eq!(ino(&mut r, &[b"rel", b"b"], false), ino_of(&p("a/b")));
        assert_eq!(ino(&mut r, &[b"abs"], false), ino_of(&p("a/b")));
        // `..` stops at the root; so does an absolute target (re-rooted).
        assert_eq!(ino(&mut r, &[b"a", b"b", b"up"], false), ino_of(&p("a")));
        assert_eq!(ino(&mut r, &[b"a", b"twisty"], false), ino_of(&p("a/b")));
        assert_eq!(ino(&mut r, &[b"out", b"sub"], false), None);
        // Missing directories are created below a symlink, not in place of its target.
        assert_eq!(
            ino(&mut r, &[b"lib", b"new"], true),
            ino_of(&p("usr/lib/new"))
        );
        assert_eq!(ino(&mut r, &[b"dangling"], false), None);
        for (dirs, want) in [
            (
                &[&b"out"[..], b"sub"][..],
                "parent \"out\" is a dangling symlink",
            ),
            (
                &[b"dangling", b"x"],
                "parent \"dangling\" is a dangling symlink",
            ),
            (&[b"f"], "parent \"f\" is not a directory"),
            (&[b"to-file", b"x"], "parent \"to-file\" is not a directory"),
        ] {
            let err = r.dir(dirs, true, "x/y").unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.starts_with("layer entry \"x/y\""), "{err}");
        }
        // The chain cached after a symlink is not reused for a path it no longer matches.
        assert_eq!(ino(&mut r, &[b"usr", b"lib"], false), ino_of(&p("usr/lib")));
        assert_eq!(ino(&mut r, &[b"a"], false), ino_of(&p("a")));
        assert!(r.dir(&[b"n", b"m"], true, "e").unwrap().is_some());
        assert!(p("n/m").is_dir());
        assert!(!outside.join("sub/m").exists());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn resolver_stops_after_40_symlinks() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        // l0 -> l1 -> ... -> l40 -> d: 41 symlinks from l0, 40 from l1.
        for i in 0..=MAX_SYMLINKS {
            let next = if i == MAX_SYMLINKS {
                "d".to_owned()
            } else {
                format!("l{}", i + 1)
            };
            symlink(next, t.path().join(format!("l{i}"))).unwrap();
        }
        symlink("self/x", t.path().join("self")).unwrap();
        symlink("/d/../pong", t.path().join("ping")).unwrap();
        symlink("ping", t.path().join("pong")).unwrap();
        let mut r = Resolver::open(t.path()).unwrap();
        let d = ino_of(&t.path().join("d"));
        assert_eq!(ino(&mut r, &[b"l1"], true), d);
        for dirs in [&[&b"l0"[..]][..], &[b"self"], &[b"ping", b"d"]] {
            let err = r.dir(dirs, true, "x/y").unwrap_err().to_string();
            assert!(err.starts_with("layer entry \"x/y\": parent"), "{err}");
            assert!(err.ends_with("too many levels of symbolic links"), "{err}");
        }
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
