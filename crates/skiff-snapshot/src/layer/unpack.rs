//! Creating the entries of a tar in a directory: the unpacking thread of [`super::apply`].
//!
//! Every entry is created relative to an fd of its parent, opened by [`Resolver`], which
//! follows symlinks inside the root only (as in docker's chroot); the entry's own last
//! component is never followed. What exists at the entry's path is replaced as docker does:
//! a directory over a directory only gets new metadata, anything else is removed first.
//! Metadata is set by [`super::attrs`]; directory times only at the very end, once nothing
//! more is created inside them.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use tar::EntryType;

use super::apply::WhiteoutMode;
use super::attrs::{read_meta, set_meta_at, set_owner_mode_xattrs};
use super::error::{entry_err, LayerError};
use super::path::{self, clean, is_dir, join, lstat_at, remove_all_at, Resolver};
use super::tarwrite::lossy;
use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// Copy buffer for file contents, reused for every file.
const COPY_BUFFER: usize = 1 << 20;

/// Unpacks the tar read from `r` into `target`. Returns the number of entries applied.
pub(crate) fn unpack(r: impl Read, target: &Path, mode: WhiteoutMode) -> Result<u64, LayerError> {
    let resolver = Resolver::open(target).map_err(super::error::io_err(target, "open target"))?;
    let mut u = Unpacker {
        resolver,
        mode,
        from_layer: HashSet::new(),
        dir_times: BTreeMap::new(),
        buf: vec![0; COPY_BUFFER],
    };
    let mut archive = tar::Archive::new(r);
    let mut last: Option<String> = None;
    let mut count = 0;
    let read_err = |after: &Option<String>, source| LayerError::Read {
        after: after.clone(),
        source,
    };
    for entry in archive.entries().map_err(|e| read_err(&last, e))? {
        let mut entry = entry.map_err(|e| read_err(&last, e))?;
        let name = lossy(&entry.path_bytes());
        if u.entry(&mut entry, &name)? {
            count += 1;
        }
        last = Some(name);
    }
    u.set_dir_times();
    Ok(count)
}

struct Unpacker {
    resolver: Resolver,
    mode: WhiteoutMode,
    /// Paths this layer created, with all their ancestors: an opaque marker keeps these.
    from_layer: HashSet<Vec<u8>>,
    /// Directory mtimes to set at the end, by path.
    dir_times: BTreeMap<Vec<u8>, Timespec>,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Applies one entry. Returns false for entries that carry nothing (global PAX headers).
    fn entry<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<bool, LayerError> {
        let ty = e.header().entry_type();
        if ty == EntryType::XGlobalHeader {
            return Ok(false);
        }
        let raw = e.path_bytes().into_owned();
        let comps = clean(&raw).ok_or_else(|| LayerError::PathEscapes {
            entry: name.to_owned(),
        })?;
        let Some((base, dirs)) = comps.split_last() else {
            if ty == EntryType::Directory {
                // The root's own entry: its metadata belongs to the snapshotter.
                return Ok(true);
            }
            return Err(invalid(name, "would replace the root directory"));
        };
        if let Some(victim) = base.strip_prefix(WHITEOUT_PREFIX) {
            self.whiteout(dirs, base, victim, name)?;
            return Ok(true);
        }
        let meta = read_meta(e, name)?;
        let key = join(&comps);
        self.mark_from_layer(&key);
        if ty != EntryType::Directory {
            self.dir_times.remove(&key);
        }
        // Hardlink targets are resolved (and their parent fd kept) before the entry's parent.
        let link_src = if ty == EntryType::Link {
            Some(self.link_source(e, name)?)
        } else {
            None
        };
        if link_src
            .as_ref()
            .is_some_and(|(_, _, target)| *target == key)
        {
            return Ok(true); // a hardlink to itself
        }
        let parent = self
            .resolver
            .dir(dirs, true, name)?
            .ok_or_else(|| invalid(name, "parent vanished"))?;
        let existing = lstat_at(parent, base).map_err(entry_err(name, "lstat"))?;
        if let Some(st) = &existing {
            if !(ty == EntryType::Directory && is_dir(st)) {
                remove_all_at(parent, base).map_err(entry_err(name, "remove existing"))?;
            }
        }
        match ty {
            EntryType::Directory => {
                if existing.as_ref().is_none_or(|st| !is_dir(st)) {
                    rustix::fs::mkdirat(parent, *base, Mode::from_raw_mode(0o700))
                        .map_err(|e| entry_err(name, "mkdir")(e.into()))?;
                }
                let fd = path::open_child_dir(parent, base)
                    .map_err(entry_err(name, "open directory"))?;
                set_owner_mode_xattrs(fd.as_fd(), &meta, name)?;
                // A directory over a whiteout is a new directory: what the lower layers had
                // there must stay hidden, which overlayfs calls opaque (as after rmdir+mkdir).
                if self.mode == WhiteoutMode::Overlay && existing.as_ref().is_some_and(is_whiteout)
                {
                    set_opaque(fd.as_fd(), name)?;
                }
                self.dir_times.insert(key, meta.mtime);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(parent, *base, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| entry_err(name, "create")(e.into()))?;
                let mut file = File::from(fd);
                copy(e, &mut file, &mut self.buf, name)?;
                set_owner_mode_xattrs(file.as_fd(), &meta, name)?;
                let times = Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                };
                rustix::fs::futimens(&file, &times)
                    .map_err(|e| entry_err(name, "set times")(e.into()))?;
            }
            EntryType::Link => {
                let (sdir, sbase, _) = link_src
                    .as_ref()
                    .ok_or_else(|| invalid(name, "unresolved hardlink"))?;
                rustix::fs::linkat(sdir, sbase.as_slice(), parent, *base, AtFlags::empty())
                    .map_err(|e| entry_err(name, "hardlink")(e.into()))?;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| invalid(name, "symlink without a target"))?;
                rustix::fs::symlinkat(&*target, parent, *base)
                    .map_err(|e| entry_err(name, "symlink")(e.into()))?;
                set_meta_at(parent, base, &meta, false, name)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match ty {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = e.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = e.header().device_minor().ok().flatten().unwrap_or(0);
                        let ft = if ty == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(parent, *base, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| entry_err(name, "mknod")(e.into()))?;
                set_meta_at(parent, base, &meta, true, name)?;
            }
            other => return Err(invalid(name, &format!("unsupported entry type {other:?}"))),
        }
        Ok(true)
    }

    fn mark_from_layer(&mut self, key: &[u8]) {
        let mut p = key;
        while self.from_layer.insert(p.to_vec()) {
            match p.iter().rposition(|&b| b == b'/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }

    /// Resolves a hardlink's target: inside the root (its parents' symlinks followed inside
    /// the root, its last component not followed), existing, not a directory. Returns its
    /// parent's fd, its name and its cleaned path.
    fn link_source<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(OwnedFd, Vec<u8>, Vec<u8>), LayerError> {
        let raw = e.link_name_bytes().unwrap_or_default().into_owned();
        let bad = |reason: &str| LayerError::BadHardlink {
            entry: name.to_owned(),
            target: lossy(&raw),
            reason: reason.to_owned(),
        };
        let comps = clean(&raw).ok_or_else(|| bad("escapes the root"))?;
        let (base, dirs) = comps
            .split_last()
            .ok_or_else(|| bad("is the root directory"))?;
        let dir = match self.resolver.dir(dirs, false, name) {
            Ok(Some(fd)) => fd,
            Ok(None) => return Err(bad("does not exist")),
            Err(LayerError::SymlinkLoop { parent, .. }) => {
                return Err(bad(&format!(
                    "parent {parent:?}: too many levels of symbolic links"
                )))
            }
            Err(LayerError::NotADirectory { parent, .. }) => {
                return Err(bad(&format!("parent {parent:?} is not a directory")))
            }
            Err(e) => return Err(e),
        };
        match lstat_at(dir, base) {
            Ok(Some(st)) if is_dir(&st) => return Err(bad("is a directory")),
            Ok(Some(_)) => {}
            Ok(None) => return Err(bad("does not exist")),
            Err(e) => return Err(entry_err(name, "lstat hardlink target")(e)),
        }
        let dir = dir.try_clone_to_owned().map_err(entry_err(name, "dup"))?;
        Ok((dir, base.to_vec(), join(&comps)))
    }

    /// `.wh.NAME` removes NAME of a lower layer; `.wh..wh..opq` hides all of its directory's
    /// lower content. Whiteouts only ever apply to lower layers (OCI image-spec layer.md), so
    /// what this layer created itself is left alone.
    fn whiteout(
        &mut self,
        dirs: &[&[u8]],
        base: &[u8],
        victim: &[u8],
        name: &str,
    ) -> Result<(), LayerError> {
        if base == OPAQUE_MARKER {
            return self.opaque(dirs, name);
        }
        if victim.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.*` names are AUFS bookkeeping (`.wh..wh.plnk`): nothing to apply.
            return Ok(());
        }
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(invalid(name, "invalid whiteout name"));
        }
        let mut key = join(dirs);
        if !key.is_empty() {
            key.push(b'/');
        }
        key.extend_from_slice(victim);
        if self.from_layer.contains(&key) {
            return Ok(());
        }
        let create = self.mode == WhiteoutMode::Overlay;
        let Some(parent) = self.resolver.dir(dirs, create, name)? else {
            return Ok(()); // Remove mode, and nothing there to remove.
        };
        remove_all_at(parent, victim).map_err(entry_err(name, "remove whited-out path"))?;
        if self.mode == WhiteoutMode::Overlay {
            rustix::fs::mknodat(parent, victim, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|e| entry_err(name, "create whiteout device")(e.into()))?;
        }
        Ok(())
    }

    fn opaque(&mut self, dirs: &[&[u8]], name: &str) -> Result<(), LayerError> {
        let key = join(dirs);
        match self.mode {
            WhiteoutMode::Overlay => {
                let dir = self
                    .resolver
                    .dir(dirs, true, name)?
                    .ok_or_else(|| invalid(name, "no directory"))?;
                set_opaque(dir, name)
            }
            WhiteoutMode::Remove => {
                let Some(dir) = self.resolver.dir(dirs, false, name)? else {
                    return Ok(());
                };
                purge(dir, &key, &self.from_layer)
                    .map_err(entry_err(name, "remove opaque directory content"))
            }
        }
    }

    /// Sets the deferred directory times, resolving each path again (its parents as for an
    /// entry, the directory itself not followed). A directory removed or replaced since is
    /// skipped.
    fn set_dir_times(&mut self) {
        for (key, mtime) in std::mem::take(&mut self.dir_times) {
            let comps: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
            let Some((base, dirs)) = comps.split_last() else {
                continue;
            };
            let Ok(Some(parent)) = self.resolver.dir(dirs, false, "") else {
                continue;
            };
            let times = Timestamps {
                last_access: mtime,
                last_modification: mtime,
            };
            if let Err(e) = rustix::fs::utimensat(parent, *base, &times, AtFlags::SYMLINK_NOFOLLOW)
            {
                log::debug!("setting times of {:?}: {e}", lossy(&key));
            }
        }
    }
}

fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn set_opaque(dir: BorrowedFd<'_>, name: &str) -> Result<(), LayerError> {
    rustix::fs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
        .map_err(|e| entry_err(name, "set trusted.overlay.opaque")(e.into()))
}

/// Removes from `dir` (at `key`) everything this layer did not create, recursing into the
/// directories it did create or pass through.
fn purge(dir: BorrowedFd<'_>, key: &[u8], from_layer: &HashSet<Vec<u8>>) -> io::Result<()> {
    for child in path::list_dir(dir)? {
        let mut ck = key.to_vec();
        if !ck.is_empty() {
            ck.push(b'/');
        }
        ck.extend_from_slice(&child);
        if !from_layer.contains(&ck) {
            remove_all_at(dir, &child)?;
        } else if lstat_at(dir, &child)?.is_some_and(|st| is_dir(&st)) {
            let sub = path::open_child_dir(dir, &child)?;
            purge(sub.as_fd(), &ck, from_layer)?;
        }
    }
    Ok(())
}

pub(super) fn invalid(name: &str, reason: &str) -> LayerError {
    LayerError::InvalidEntry {
        entry: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Copies the entry's data into the new file through one large reused buffer.
fn copy(r: &mut impl Read, w: &mut File, buf: &mut [u8], name: &str) -> Result<(), LayerError> {
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                let after = Some(name.to_owned());
                return Err(LayerError::Read { after, source });
            }
        };
        w.write_all(&buf[..n]).map_err(entry_err(name, "write"))?;
    }
}
