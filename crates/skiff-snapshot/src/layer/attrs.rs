//! An entry's metadata: read from its tar header (PAX overrides applied) and set on the
//! file created for it, in the order that keeps it: owner, then mode (chown clears setuid
//! bits), then xattrs (chown clears `security.capability`), then times.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, XattrFlags};

use super::error::{entry_err, LayerError};
use super::is_skipped_xattr;
use super::tarwrite::lossy;
use super::unpack::invalid;

/// Metadata of an entry, PAX overrides applied.
pub(super) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) fn read_meta<R: Read>(
    e: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<Meta, LayerError> {
    let h = e.header();
    // An empty numeric field (all NULs or spaces) reads as 0, as Go's archive/tar has it.
    let field = |r: io::Result<u64>, raw: &[u8], what: &str| {
        let empty = raw.iter().all(|&b| b == 0 || b == b' ');
        r.or_else(|e| if empty { Ok(0) } else { Err(e) })
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| invalid(name, &format!("invalid {what} in header")))
    };
    let old = h.as_old();
    let mode = field(h.mode().map(u64::from), &old.mode, "mode")? & 0o7777;
    let uid = field(h.uid(), &old.uid, "uid")?;
    let gid = field(h.gid(), &old.gid, "gid")?;
    let secs = h
        .mtime()
        .ok()
        .and_then(|m| i64::try_from(m).ok())
        .unwrap_or(0);
    let mut mtime = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = e
        .pax_extensions()
        .map_err(entry_err(name, "read PAX header"))?
    {
        for ext in pax {
            let ext = ext.map_err(entry_err(name, "read PAX header"))?;
            let key = ext.key_bytes();
            if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                if !is_skipped_xattr(x) {
                    xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                }
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`"1700000000.123456789"`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    if secs.starts_with('-') && tv_nsec > 0 {
        // -1.5 is 1.5 s before the epoch: -2 s + 0.5 s.
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    tv_nsec = tv_nsec.min(999_999_999);
    Some(Timespec { tv_sec, tv_nsec })
}

/// Owner, then mode, then xattrs, through an fd of a regular file or directory.
pub(super) fn set_owner_mode_xattrs(
    fd: BorrowedFd<'_>,
    m: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    let (uid, gid) = ids(m);
    rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(|e| entry_err(name, "chown")(e.into()))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode))
        .map_err(|e| entry_err(name, "chmod")(e.into()))?;
    for (k, v) in &m.xattrs {
        xattr_result(
            rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty()),
            k,
            name,
        )?;
    }
    Ok(())
}

/// Metadata of a symlink or special file, by name in its parent (no fd can be opened on a
/// symlink for writing metadata, and opening a fifo or device has side effects).
pub(super) fn set_meta_at(
    parent: BorrowedFd<'_>,
    base: &[u8],
    m: &Meta,
    chmod: bool,
    name: &str,
) -> Result<(), LayerError> {
    let (uid, gid) = ids(m);
    rustix::fs::chownat(
        parent,
        base,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| entry_err(name, "chown")(e.into()))?;
    if chmod {
        // Never a symlink: this entry was just created as a fifo or device node.
        rustix::fs::chmodat(parent, base, Mode::from_raw_mode(m.mode), AtFlags::empty())
            .map_err(|e| entry_err(name, "chmod")(e.into()))?;
    }
    if !m.xattrs.is_empty() {
        // l*xattr through the parent's fd in /proc: the kernel does not resolve the chain again.
        let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
        p.extend_from_slice(base);
        for (k, v) in &m.xattrs {
            xattr_result(
                rustix::fs::lsetxattr(p.as_slice(), k.as_slice(), v, XattrFlags::empty()),
                k,
                name,
            )?;
        }
    }
    let times = Timestamps {
        last_access: m.mtime,
        last_modification: m.mtime,
    };
    rustix::fs::utimensat(parent, base, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| entry_err(name, "set times")(e.into()))
}

fn ids(m: &Meta) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (
        rustix::fs::Uid::from_raw(m.uid),
        rustix::fs::Gid::from_raw(m.gid),
    )
}

/// A filesystem without xattr support (or a namespace we may not write, like `trusted.*`
/// without CAP_SYS_ADMIN) loses only that xattr, with a warning, as with docker; except
/// `security.capability`, without which a binary silently loses its privileges.
fn xattr_result(r: rustix::io::Result<()>, key: &[u8], name: &str) -> Result<(), LayerError> {
    match r {
        Ok(()) => Ok(()),
        Err(e @ (rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM))
            if key != b"security.capability" =>
        {
            log::warn!("layer entry {name:?}: xattr {:?} not set: {e}", lossy(key));
            Ok(())
        }
        Err(e) => Err(LayerError::Entry {
            entry: name.to_owned(),
            op: "set xattr",
            source: e.into(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("x"), None);
    }
}
