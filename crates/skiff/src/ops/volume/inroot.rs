//! Reading a container's tree as if chrooted into it: paths are resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` (an absolute symlink restarts at the root, `..` stops there,
//! magic links refused), and a tree is walked through directory fds with `O_NOFOLLOW`, so a
//! symlink inside the container (`passwd -> ../../../etc/passwd`, or one swapped in by a
//! running container while we walk: CVE-2018-15664) never leads to the host's files.
//!
//! Used by `cp` (both ways: resolving the destination), `export` and by the volume planner
//! when it fills a new volume from the image.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

/// Opens `root` as the directory every later resolution stays in.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `path` (container path, absolute or not) below `root` as a chroot
/// would resolve it.
pub fn open_dir_in(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// A path split for resolution: the directory holding the last component, and that
/// component (None when the path names a directory by itself: `/`, `x/.`, `x/..`).
pub struct Located {
    pub parent: OwnedFd,
    pub name: Option<String>,
}

/// Resolves `path` below `root`: every component but the last is followed inside the root;
/// the last one is left for the caller to follow (`-L`) or not.
pub fn locate(root: BorrowedFd<'_>, path: &str) -> io::Result<Located> {
    let trimmed = path.trim_end_matches('/');
    let (dir, last) = match trimmed.rsplit_once('/') {
        Some((d, l)) => (d, l),
        None => ("", trimmed),
    };
    if last.is_empty() || last == "." || last == ".." {
        return Ok(Located {
            parent: open_dir_in(root, trimmed)?,
            name: None,
        });
    }
    Ok(Located {
        parent: open_dir_in(root, dir)?,
        name: Some(last.to_owned()),
    })
}

/// `lstat` of `name` in `dir` (never follows it).
pub fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `stat` of a directory fd itself.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// Opens the directory `name` in `dir`, refusing a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens what `path` names below `root`, following a symlink in its last component too
/// (`cp -L`), inside the root. Regular files and directories are opened for reading, other
/// kinds only as `O_PATH` (never opening a device or a fifo).
pub fn open_followed(root: BorrowedFd<'_>, path: &str) -> io::Result<(OwnedFd, Stat)> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let probe = rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )?;
    let st = fstat(probe.as_fd())?;
    let flags = match file_type(&st) {
        FileType::Directory => OFlags::RDONLY | OFlags::DIRECTORY,
        FileType::RegularFile => OFlags::RDONLY,
        _ => return Ok((probe, st)),
    };
    let fd = rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), how)?;
    let again = fstat(fd.as_fd())?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        // Swapped between the two opens (a running container): refuse rather than guess.
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    Ok((fd, st))
}

/// Writes `name` (under 100 bytes) into the header's name field as is.
fn set_raw_name(h: &mut tar::Header, name: &str) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Writes a tree as tar entries through fds only. Hard links inside the tree become link
/// entries to the first path written.
pub struct TreeTar<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), String>,
    /// Keep owners (uid/gid) as they are; otherwise 0:0 (`cp` without `-a`).
    keep_owners: bool,
    /// Fail on names starting with `.wh.` (a layer apply would take them for whiteouts).
    pub refuse_whiteouts: bool,
}

impl<W: Write> TreeTar<W> {
    pub fn new(out: W, keep_owners: bool) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        builder.follow_symlinks(false);
        TreeTar {
            builder,
            links: HashMap::new(),
            keep_owners,
            refuse_whiteouts: false,
        }
    }

    fn header(&self, st: &Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        if self.keep_owners {
            h.set_uid(u64::from(st.st_uid));
            h.set_gid(u64::from(st.st_gid));
        }
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// Appends the directory `dir` itself as `tar_name` (its attributes from `st`) and then
    /// its contents.
    pub fn add_dir_fd(&mut self, dir: BorrowedFd<'_>, st: &Stat, tar_name: &str) -> io::Result<()> {
        if !tar_name.is_empty() {
            let mut h = self.header(st, tar::EntryType::Directory);
            self.append_data_named(&mut h, &format!("{tar_name}/"), io::empty())?;
        }
        self.add_children(dir, tar_name)
    }

    /// Appends the contents of `dir` (not `dir` itself), named `prefix/child`.
    pub fn add_children(&mut self, dir: BorrowedFd<'_>, prefix: &str) -> io::Result<()> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let fd = rustix::io::dup(dir)?;
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(name.to_vec());
        }
        names.sort();
        for name in names {
            let name = String::from_utf8_lossy(&name).into_owned();
            let child = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            self.add_entry(dir, &name, &child)?;
        }
        Ok(())
    }

    /// Appends an already opened file or directory (from [`open_followed`]) as `tar_name`.
    pub fn add_opened(&mut self, fd: OwnedFd, st: &Stat, tar_name: &str) -> io::Result<()> {
        match file_type(st) {
            FileType::Directory => self.add_dir_fd(fd.as_fd(), st, tar_name),
            FileType::RegularFile => self.add_file(File::from(fd), st, tar_name),
            ft => self.add_special(ft, st, tar_name),
        }
    }

    fn add_file(&mut self, file: File, st: &Stat, tar_name: &str) -> io::Result<()> {
        let mut h = self.header(st, tar::EntryType::Regular);
        h.set_size(st.st_size as u64);
        // A file that shrinks while read (running container) must not corrupt the tar: pad.
        let reader = io::Read::chain(io::Read::take(file, st.st_size as u64), io::repeat(0));
        let reader = io::Read::take(reader, st.st_size as u64);
        self.append_data_named(&mut h, tar_name, reader)
    }

    fn add_special(&mut self, ft: FileType, st: &Stat, tar_name: &str) -> io::Result<()> {
        let kind = match ft {
            FileType::CharacterDevice => tar::EntryType::Char,
            FileType::BlockDevice => tar::EntryType::Block,
            FileType::Fifo => tar::EntryType::Fifo,
            // Sockets cannot be archived (tar skips them too).
            _ => return Ok(()),
        };
        let mut h = self.header(st, kind);
        if ft != FileType::Fifo {
            h.set_device_major(rustix::fs::major(st.st_rdev))?;
            h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
        }
        self.append_data_named(&mut h, tar_name, io::empty())
    }

    /// Appends `name` (in `dir`, never followed) as `tar_name`, recursing into directories.
    pub fn add_entry(&mut self, dir: BorrowedFd<'_>, name: &str, tar_name: &str) -> io::Result<()> {
        if self.refuse_whiteouts && name.starts_with(".wh.") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: names starting with \".wh.\" cannot be copied into a container by skiff"),
            ));
        }
        let st = match lstat_at(dir, name) {
            Ok(st) => st,
            // Gone meanwhile (a running container): like tar, skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let ft = file_type(&st);
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(&st, tar::EntryType::Link);
                self.append_link_named(&mut h, tar_name, first.as_ref())?;
                return Ok(());
            }
            self.links.insert(key, tar_name.to_owned());
        }
        match ft {
            FileType::Directory => {
                let sub = open_subdir(dir, name)?;
                self.add_dir_fd(sub.as_fd(), &st, tar_name)
            }
            FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.add_file(File::from(fd), &st, tar_name)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                let mut h = self.header(&st, tar::EntryType::Symlink);
                let target = OsStr::from_bytes(target.as_bytes());
                self.append_link_named(&mut h, tar_name, target.as_ref())
            }
            ft => self.add_special(ft, &st, tar_name),
        }
    }

    /// Appends an entry named exactly `name`. The tar crate drops `./` from names, but
    /// docker's archives of `DIR/.` name their entries `./x`: short names are written into
    /// the header as they are, long ones go through the crate (GNU long names).
    fn append_data_named(
        &mut self,
        h: &mut tar::Header,
        name: &str,
        data: impl io::Read,
    ) -> io::Result<()> {
        if name.starts_with("./") && name.len() < 100 {
            set_raw_name(h, name);
            return self.builder.append(h, data);
        }
        self.builder.append_data(h, name, data)
    }

    fn append_link_named(
        &mut self,
        h: &mut tar::Header,
        name: &str,
        target: &std::path::Path,
    ) -> io::Result<()> {
        let target_len = target.as_os_str().len();
        if name.starts_with("./") && name.len() < 100 && target_len < 100 {
            set_raw_name(h, name);
            h.set_link_name(target)?;
            h.set_cksum();
            return self.builder.append(h, io::empty());
        }
        self.builder.append_link(h, name, target)
    }

    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}
