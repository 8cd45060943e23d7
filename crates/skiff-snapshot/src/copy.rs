//! Copying a whole tree with everything a layer carries: owners, modes (setuid included),
//! xattrs, nanosecond mtimes, hardlinks (kept as links), symlinks, devices and fifos.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

use crate::snapshotter::{io_err, SnapshotError};

/// Copies the contents of `src` into the existing directory `dst`, and `src`'s own metadata
/// onto `dst`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), SnapshotError> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    copy_dir_contents(src, dst, &mut links)?;
    let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
    copy_metadata(src, dst, &meta)
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), SnapshotError> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(io_err(src))?
        .collect::<Result<_, _>>()
        .map_err(io_err(src))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(io_err(&from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to).map_err(io_err(&to))?;
            copy_dir_contents(&from, &to, links)?;
        } else {
            if !ft.is_symlink() && meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    fs::hard_link(first, &to).map_err(io_err(&to))?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), to.clone());
            }
            if ft.is_file() {
                fs::copy(&from, &to).map_err(io_err(&from))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&from).map_err(io_err(&from))?;
                std::os::unix::fs::symlink(target, &to).map_err(io_err(&to))?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = rustix::fs::FileType::from_raw_mode(meta.mode());
                rustix::fs::mknodat(
                    CWD,
                    &to,
                    kind,
                    rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777),
                    meta.rdev(),
                )
                .map_err(|e| SnapshotError::Io {
                    path: to.clone(),
                    source: e.into(),
                })?;
            } else {
                // Sockets are not part of any layer.
                continue;
            }
        }
        copy_metadata(&from, &to, &meta)?;
    }
    Ok(())
}

fn copy_metadata(from: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), SnapshotError> {
    let sys = |e: rustix::io::Errno| SnapshotError::Io {
        path: to.to_owned(),
        source: e.into(),
    };
    rustix::fs::chownat(
        CWD,
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys)?;
    let is_link = meta.file_type().is_symlink();
    if !is_link {
        // After chown, which clears setuid/setgid bits.
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err(to))?;
    }
    if let Ok(names) = xattr::list(from) {
        for name in names {
            if let Ok(Some(value)) = xattr::get(from, &name) {
                if let Err(e) = xattr::set(to, &name, &value) {
                    // Filesystems without user xattrs on symlinks refuse some; the security
                    // ones must not be lost silently.
                    if name.to_string_lossy().starts_with("security.") {
                        return Err(SnapshotError::Io {
                            path: to.to_owned(),
                            source: e,
                        });
                    }
                }
            }
        }
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(sys)?;
    Ok(())
}
