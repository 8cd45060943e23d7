//! Files the tests check: blob digests, tar contents, paths that must not exist.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::harness::is_hex;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Every file in `<root>/blobs/sha256/` hashes to its name; returns how many there are.
#[track_caller]
pub fn assert_blobs_verified(root: &Path) -> usize {
    let dir = root.join("blobs/sha256");
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let e = e.expect("read blobs dir");
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let md = fs::symlink_metadata(&p).expect("stat blob");
        assert!(md.is_file(), "{} is not a regular file", p.display());
        assert!(
            is_hex(&name, 64),
            "{} is not named by a sha256 digest",
            p.display()
        );
        let got = sha256_file(&p);
        assert_eq!(
            got,
            name,
            "blob {} does not hash to its name: a partial or corrupt blob is visible",
            p.display()
        );
        n += 1;
    }
    n
}

/// Extract a tar (plain, from a trusted test source) into `dest`.
pub fn extract_tar(tar_path: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("create extract dir");
    let f = fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    ar.unpack(dest)
        .unwrap_or_else(|e| panic!("unpack {} into {}: {e}", tar_path.display(), dest.display()));
}

/// Names of the entries of a plain tar file (normalised: no leading `./`, no trailing `/`).
pub fn tar_entry_names(tar_path: &Path) -> BTreeSet<String> {
    let f = fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut names = BTreeSet::new();
    for e in ar.entries().expect("read tar") {
        let e = e.expect("tar entry");
        let p = e.path().expect("entry path").to_string_lossy().into_owned();
        names.insert(crate::tree::normalize(&p));
    }
    names
}

/// A name unlikely to exist anywhere, for files that must not appear.
pub fn unique_marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "skiff-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every path under `dir` whose file name contains `needle` (symlinks not followed).
pub fn find_names_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}
