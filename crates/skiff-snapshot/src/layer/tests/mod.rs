//! End-to-end tests of apply and diff, run as root in temporary directories (they say why
//! they skip otherwise).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use skiff_image::Digest;
use tar::{EntryType, Header};

use super::*;

pub(super) fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (chown, mknod, security.capability)");
    false
}

macro_rules! require_root {
    () => {
        if !is_root() {
            return;
        }
    };
}

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A valid VFS_CAP_REVISION_2 `security.capability` value granting CAP_NET_RAW (effective).
const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Builds a tree with every kind of entry a layer can hold, and a socket it cannot.
fn build_tree(root: &Path) {
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("d/deep/er")).unwrap();
    fs::write(p("d/f"), "hello").unwrap();
    chown(&p("d/f"), 1001, 1002);
    chmod(&p("d/f"), 0o640);
    xattr::set(p("d/f"), "user.foo", b"bar\0baz").unwrap();
    fs::create_dir(p("bin")).unwrap();
    fs::write(p("bin/su"), vec![7u8; 70_000]).unwrap();
    chown(&p("bin/su"), 1000, 1000);
    chmod(&p("bin/su"), 0o4755);
    fs::write(p("bin/ping"), "ping").unwrap();
    chmod(&p("bin/ping"), 0o755);
    xattr::set(p("bin/ping"), "security.capability", &CAP_NET_RAW).unwrap();
    fs::create_dir_all(p("z")).unwrap();
    fs::create_dir_all(p("a")).unwrap();
    fs::write(p("z/orig"), "linked").unwrap();
    fs::hard_link(p("z/orig"), p("a/link")).unwrap();
    symlink("d/f", p("s")).unwrap();
    chown(&p("s"), 1003, 1003);
    symlink("/etc/passwd", p("abs-link")).unwrap();
    fs::create_dir(p("dev")).unwrap();
    let mknod = |name: &str, ft, mode, dev| {
        rustix::fs::mknodat(CWD, p(name), ft, Mode::from_raw_mode(mode), dev).unwrap();
        chmod(&p(name), mode);
    };
    mknod(
        "dev/null",
        FileType::CharacterDevice,
        0o666,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        "dev/loop9",
        FileType::BlockDevice,
        0o660,
        rustix::fs::makedev(7, 9),
    );
    mknod("fifo", FileType::Fifo, 0o600, 0);
    fs::write(p("empty"), "").unwrap();
    let long = format!("d/deep/er/{}", "n".repeat(180));
    fs::write(p(&long), "long").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(p("sock")).unwrap();
    fs::create_dir(p("private")).unwrap();
    chmod(&p("private"), 0o700);
    chown(&p("private"), 1000, 1000);
    set_mtime(&p("s"), 1_500_000_000);
    set_mtime(&p("d/f"), 1_600_000_000);
    for (dir, t) in [
        ("d/deep/er", 1_111_111_111),
        ("d/deep", 1_222_222_222),
        ("d", 1_333_333_333),
    ] {
        set_mtime(&p(dir), t);
    }
}

/// Describes every entry under `root` (sockets left out): type, mode, owner, mtime seconds,
/// size and content, link target, device, xattrs, and for multiply-linked files the first
/// path (in walk order) of their inode.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(
        root: &Path,
        rel: &str,
        out: &mut BTreeMap<String, String>,
        inodes: &mut HashMap<u64, String>,
    ) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let r = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let path = root.join(&r);
            let m = fs::symlink_metadata(&path).unwrap();
            let ft = m.file_type();
            if ft.is_socket() {
                continue;
            }
            let mut d = format!(
                "{:?} {:o} {}:{} t={}",
                FileType::from_raw_mode(m.mode()),
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime()
            );
            if ft.is_file() {
                d += &format!(
                    " size={} sha={}",
                    m.len(),
                    Digest::of_bytes(&fs::read(&path).unwrap()).short()
                );
            }
            if ft.is_symlink() {
                d += &format!(" -> {}", fs::read_link(&path).unwrap().display());
            }
            if ft.is_char_device() || ft.is_block_device() {
                d += &format!(" dev={}", m.rdev());
            }
            let mut xs: Vec<_> = xattr::list(&path).unwrap().collect();
            xs.sort();
            for x in xs {
                if !is_skipped_xattr(x.as_bytes()) {
                    d += &format!(
                        " {}={:?}",
                        x.to_string_lossy(),
                        xattr::get(&path, &x).unwrap().unwrap()
                    );
                }
            }
            if !ft.is_dir() && m.nlink() > 1 {
                d += &format!(
                    " inode={}",
                    inodes.entry(m.ino()).or_insert_with(|| r.clone())
                );
            }
            out.insert(r.clone(), d);
            if ft.is_dir() {
                walk(root, &r, out, inodes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out, &mut HashMap::new());
    out
}

fn diff(source: DiffSource<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = write_layer(source, &mut out, &DiffOptions::default()).unwrap();
    assert_eq!(stats.size, out.len() as u64);
    out
}

/// Entry names of a tar, in order.
fn names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn apply(blob: &[u8], target: &Path, whiteouts: WhiteoutMode) -> Result<ApplyStats, LayerError> {
    apply_layer(blob, target, &ApplyOptions { whiteouts })
}

fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = compressing_writer(&mut out, c).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
    out
}

/// Builds a tar of raw entries: (name bytes, type, data, link name). Names are written as
/// given, `..` and all, which the tar crate's own setters refuse.
fn raw_tar(entries: &[(&str, EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, ty, data, link) in entries {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*ty);
        h.set_mode(if *ty == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_234_567_890);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

const DIR: EntryType = EntryType::Directory;
const REG: EntryType = EntryType::Regular;

fn listing(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().collect()
}

mod confinement;
mod roundtrip;
mod whiteouts;
