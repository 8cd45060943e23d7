//! File trees, compared file by file: paths, types, permission bits, owners, symlink targets,
//! device numbers, `user.*` xattrs and file contents (by sha256).
//!
//! A [`Tree`] is read from a directory (an unpacked or mounted rootfs) or from a single-layer
//! tar (the busybox base), so that two unpackers' results, or an unpacker's result and the tar
//! it came from, can be checked for equality. Modification times are left out: directory
//! mtimes legitimately change while a tree is unpacked, and the layer round-trip of mtimes is
//! the snapshot crate's unit tests' business.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, sha256: String },
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    Socket,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dir => write!(f, "dir"),
            Kind::File { size, sha256 } => {
                write!(f, "file({size} bytes, sha256 {})", &sha256[..12])
            }
            Kind::Symlink(t) => write!(f, "symlink -> {t}"),
            Kind::Char(a, b) => write!(f, "char {a}:{b}"),
            Kind::Block(a, b) => write!(f, "block {a}:{b}"),
            Kind::Fifo => write!(f, "fifo"),
            Kind::Socket => write!(f, "socket"),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (0 for symlinks, whose mode means nothing).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `user.*` extended attributes only (security.* and trusted.* depend on the host).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} mode {:04o} owner {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        for (k, v) in &self.xattrs {
            write!(f, " {k}={:?}", String::from_utf8_lossy(v))?;
        }
        Ok(())
    }
}

impl Node {
    pub fn dir(mode: u32, uid: u32, gid: u32) -> Node {
        Node {
            kind: Kind::Dir,
            mode,
            uid,
            gid,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn file(mode: u32, uid: u32, gid: u32, content: &[u8]) -> Node {
        Node {
            kind: Kind::File {
                size: content.len() as u64,
                sha256: hex::encode(Sha256::digest(content)),
            },
            mode,
            uid,
            gid,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn symlink(target: &str, uid: u32, gid: u32) -> Node {
        Node {
            kind: Kind::Symlink(target.to_string()),
            mode: 0,
            uid,
            gid,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn other(kind: Kind, mode: u32, uid: u32, gid: u32) -> Node {
        Node {
            kind,
            mode,
            uid,
            gid,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn with_xattr(mut self, name: &str, value: &[u8]) -> Node {
        self.xattrs.insert(name.to_string(), value.to_vec());
        self
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (p, n) in &self.nodes {
            writeln!(f, "{p}: {n:?}")?;
        }
        Ok(())
    }
}

/// `./a/b/` -> `a/b`; `/a` -> `a`; `.` -> ``.
pub fn normalize(p: &str) -> String {
    let mut s = p;
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            break;
        }
    }
    let s = s.trim_end_matches('/');
    if s == "." {
        String::new()
    } else {
        s.to_string()
    }
}

fn hash_reader(mut r: impl Read) -> io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

impl Tree {
    pub fn insert(&mut self, path: &str, node: Node) -> &mut Self {
        self.nodes.insert(normalize(path), node);
        self
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&normalize(path))
    }

    /// Read the tree below `root` (not `root` itself), not following symlinks.
    pub fn from_dir(root: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd =
                fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
            for e in rd {
                let e = e.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                let relp = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let md = fs::symlink_metadata(&p)
                    .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
                let ft = md.file_type();
                let rdev = md.rdev();
                let kind = if ft.is_dir() {
                    stack.push((p.clone(), relp.clone()));
                    Kind::Dir
                } else if ft.is_symlink() {
                    let t = fs::read_link(&p)
                        .unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()));
                    Kind::Symlink(t.to_string_lossy().into_owned())
                } else if ft.is_file() {
                    let f =
                        fs::File::open(&p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
                    let (size, sha256) =
                        hash_reader(f).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                    Kind::File { size, sha256 }
                } else if ft.is_char_device() {
                    Kind::Char(rustix::fs::major(rdev), rustix::fs::minor(rdev))
                } else if ft.is_block_device() {
                    Kind::Block(rustix::fs::major(rdev), rustix::fs::minor(rdev))
                } else if ft.is_fifo() {
                    Kind::Fifo
                } else {
                    Kind::Socket
                };
                let mode = if ft.is_symlink() {
                    0
                } else {
                    md.mode() & 0o7777
                };
                let mut xattrs = BTreeMap::new();
                if !ft.is_symlink() {
                    if let Ok(names) = xattr::list(&p) {
                        for n in names {
                            let n = n.to_string_lossy().into_owned();
                            if n.starts_with("user.") {
                                if let Ok(Some(v)) = xattr::get(&p, &n) {
                                    xattrs.insert(n, v);
                                }
                            }
                        }
                    }
                }
                tree.nodes.insert(
                    relp,
                    Node {
                        kind,
                        mode,
                        uid: md.uid(),
                        gid: md.gid(),
                        xattrs,
                    },
                );
            }
        }
        tree
    }

    /// Read a single-layer tar file (plain). Hardlinks become copies of their target;
    /// later entries replace earlier ones, as extraction would.
    pub fn from_tar_file(path: &Path) -> Tree {
        let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Tree::from_tar(io::BufReader::new(f))
    }

    pub fn from_tar(r: impl Read) -> Tree {
        let mut tree = Tree::default();
        let mut ar = tar::Archive::new(r);
        for entry in ar.entries().expect("read tar") {
            let mut entry = entry.expect("tar entry");
            let path = normalize(&entry.path().expect("entry path").to_string_lossy());
            if path.is_empty() {
                continue;
            }
            let mut xattrs = BTreeMap::new();
            if let Ok(Some(exts)) = entry.pax_extensions() {
                for ext in exts.flatten() {
                    if let Ok(key) = ext.key() {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            if name.starts_with("user.") {
                                xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
                            }
                        }
                    }
                }
            }
            let h = entry.header().clone();
            let mode = h.mode().expect("mode") & 0o7777;
            let uid = h.uid().expect("uid") as u32;
            let gid = h.gid().expect("gid") as u32;
            let dev = || {
                (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                )
            };
            let et = h.entry_type();
            let node = if et.is_dir() {
                Node {
                    kind: Kind::Dir,
                    mode,
                    uid,
                    gid,
                    xattrs,
                }
            } else if et.is_symlink() {
                let t = entry
                    .link_name()
                    .expect("link name")
                    .expect("symlink target");
                Node {
                    kind: Kind::Symlink(t.to_string_lossy().into_owned()),
                    mode: 0,
                    uid,
                    gid,
                    xattrs,
                }
            } else if et.is_hard_link() {
                let t = entry
                    .link_name()
                    .expect("link name")
                    .expect("hardlink target");
                let t = normalize(&t.to_string_lossy());
                tree.nodes
                    .get(&t)
                    .unwrap_or_else(|| panic!("hardlink {path} to unknown {t}"))
                    .clone()
            } else if et.is_character_special() {
                let (a, b) = dev();
                Node {
                    kind: Kind::Char(a, b),
                    mode,
                    uid,
                    gid,
                    xattrs,
                }
            } else if et.is_block_special() {
                let (a, b) = dev();
                Node {
                    kind: Kind::Block(a, b),
                    mode,
                    uid,
                    gid,
                    xattrs,
                }
            } else if et.is_fifo() {
                Node {
                    kind: Kind::Fifo,
                    mode,
                    uid,
                    gid,
                    xattrs,
                }
            } else if et.is_file() || et.is_contiguous() {
                let (size, sha256) = hash_reader(&mut entry).expect("read tar entry");
                Node {
                    kind: Kind::File { size, sha256 },
                    mode,
                    uid,
                    gid,
                    xattrs,
                }
            } else {
                continue; // pax/gnu metadata entries are consumed by the tar crate
            };
            tree.nodes.insert(path, node);
        }
        tree
    }

    /// Human-readable differences, `expected` vs `self`, at most `limit` lines.
    pub fn diff(&self, expected: &Tree, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut keys: Vec<&String> = expected.nodes.keys().chain(self.nodes.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let line = match (expected.nodes.get(k), self.nodes.get(k)) {
                (Some(e), None) => format!("missing   {k}: expected {e:?}"),
                (None, Some(a)) => format!("unexpected {k}: {a:?}"),
                (Some(e), Some(a)) if e != a => format!("differs   {k}: expected {e:?}, got {a:?}"),
                _ => continue,
            };
            out.push(line);
            if out.len() >= limit {
                out.push("...".into());
                break;
            }
        }
        out
    }
}

/// Assert that two trees are identical, listing the differences when they are not.
#[track_caller]
pub fn assert_same_tree(actual: &Tree, expected: &Tree, what: &str) {
    let d = actual.diff(expected, 40);
    assert!(
        d.is_empty(),
        "{what}: trees differ ({} entries expected, {} found):\n{}",
        expected.nodes.len(),
        actual.nodes.len(),
        d.join("\n")
    );
}
