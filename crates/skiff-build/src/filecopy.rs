//! Copying one regular file for COPY and ADD with as few system calls as the kernel allows.
//!
//! A context can hold tens of thousands of small files, and on a virtual machine each system
//! call is dear: `std::fs::copy` stats both files, tries `copy_file_range` (which fails with
//! EXDEV between the context's filesystem and an overlay mount, every time), sends the bytes
//! and a final empty `sendfile`, and the caller then sets owner, mode and times by path.
//! Here the owner, mode and times are set on the open descriptor, only when they differ from
//! what creating the file gave, and `copy_file_range` is tried again only while it works.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Whether `copy_file_range` failed in a way that will not change (another filesystem, no
/// support): later copies go straight to `sendfile`.
static NO_COPY_FILE_RANGE: AtomicBool = AtomicBool::new(false);

/// What a new file gets: `src`'s bytes and mtime, `mode` (with set-id bits), `uid:gid`.
/// `target` must not exist (the caller removed what was in the way).
pub fn copy_regular_file(
    src: &Path,
    meta: &Metadata,
    target: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
) -> io::Result<()> {
    let mut input = File::open(src)?;
    let output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(target)?;
    copy_bytes(&mut input, &output, meta.len())?;
    let (euid, egid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    if (uid, gid) != (euid, egid) {
        rustix::fs::fchown(
            &output,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    // Creation masks the mode with the umask, and chown clears set-id bits: set it again
    // only when either could have changed it.
    if mode & 0o7000 != 0 || mode & umask() != 0 {
        rustix::fs::fchmod(&output, rustix::fs::Mode::from_raw_mode(mode))?;
    }
    let t = rustix::fs::Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec() as _,
    };
    rustix::fs::futimens(
        &output,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    Ok(())
}

/// Copies up to `len` bytes (the size when the source was walked; a file that shrank since
/// gives what it has, one that grew gives `len` bytes, as a tar of the walk would).
fn copy_bytes(input: &mut File, output: &File, len: u64) -> io::Result<()> {
    let mut left = len;
    if !NO_COPY_FILE_RANGE.load(Ordering::Relaxed) {
        while left > 0 {
            let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            match rustix::fs::copy_file_range(input.as_fd(), None, output.as_fd(), None, chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => left -= n as u64,
                Err(e)
                    if left == len
                        && matches!(
                            e,
                            rustix::io::Errno::XDEV
                                | rustix::io::Errno::NOSYS
                                | rustix::io::Errno::OPNOTSUPP
                                | rustix::io::Errno::INVAL
                                | rustix::io::Errno::PERM
                        ) =>
                {
                    NO_COPY_FILE_RANGE.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if left == 0 {
            return Ok(());
        }
    }
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::sendfile(output.as_fd(), input.as_fd(), None, chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => left -= n as u64,
            // Sources sendfile cannot read (rare special files) go through user space.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                return copy_through_memory(input, output, left);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_through_memory(input: &mut File, mut output: &File, len: u64) -> io::Result<()> {
    let mut limited = input.take(len);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = limited.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        output.write_all(&buf[..n])?;
    }
}

/// The process's umask, read once (from /proc, since `umask(2)` can only read by writing).
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            // Unknown: assume every bit may be masked, so the mode is always set.
            .unwrap_or(0o777)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bytes_mode_and_mtime_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![7u8; 300_000]).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
        let when = rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 5,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &src,
            &rustix::fs::Timestamps {
                last_access: when,
                last_modification: when,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        let meta = std::fs::metadata(&src).unwrap();
        let dst = dir.path().join("dst");
        let (uid, gid) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        copy_regular_file(&src, &meta, &dst, uid, gid, 0o4751).unwrap();
        let out = std::fs::metadata(&dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 300_000]);
        assert_eq!(out.mode() & 0o7777, 0o4751);
        assert_eq!((out.mtime(), out.mtime_nsec()), (1_000_000, 5));
        // The target must be new: nothing is overwritten behind the caller's back.
        assert!(copy_regular_file(&src, &meta, &dst, uid, gid, 0o644).is_err());
    }
}
