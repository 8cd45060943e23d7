//! Hand-built layer tars and docker-archive images, for what `skiff import` cannot make:
//! several layers, whiteouts, owners, devices, xattrs, and hostile entries.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::files::{sha256_file, sha256_hex};
use crate::harness::goarch;

/// Fixed mtime for every entry the tests write (2023-11-14).
pub const MTIME: u64 = 1_700_000_000;

/// A layer tar being built.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid, 0);
        self.b
            .append_data(&mut h, path, io::empty())
            .expect("append dir");
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, content)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        content: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(
            tar::EntryType::Regular,
            mode,
            uid,
            gid,
            content.len() as u64,
        );
        self.b
            .append_data(&mut h, path, content)
            .expect("append file");
        self
    }

    /// A regular file carrying extended attributes (pax `SCHILY.xattr.NAME` records).
    pub fn file_xattrs(
        &mut self,
        path: &str,
        mode: u32,
        content: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .expect("append pax xattrs");
        self.file(path, mode, content)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("append symlink");
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("append hardlink");
        self
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, mode, 0, 0, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.b
            .append_data(&mut h, path, io::empty())
            .expect("append char device");
        self
    }

    pub fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Fifo, mode, 0, 0, 0);
        self.b
            .append_data(&mut h, path, io::empty())
            .expect("append fifo");
        self
    }

    /// An entry whose name is written verbatim, unchecked: `..` components and absolute paths
    /// included, as a hostile image would carry them. `link` is the link target for symlinks
    /// and hardlinks.
    pub fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        content: &[u8],
    ) -> &mut Self {
        assert!(
            name.len() < 100,
            "raw names must fit the 100-byte name field"
        );
        let mode = if kind.is_dir() {
            0o755
        } else if kind.is_symlink() {
            0o777
        } else {
            0o644
        };
        let mut h = Self::header(kind, mode, 0, 0, content.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                assert!(
                    l.len() < 100,
                    "raw link targets must fit the 100-byte field"
                );
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_cksum();
        self.b.append(&h, content).expect("append raw entry");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish layer tar")
    }
}

/// diff_ids written into the config.
pub enum DiffIds {
    /// The sha256 of each layer, as a correct image has.
    Computed,
    /// These instead (for tampered images).
    Given(Vec<String>),
}

/// Write a docker-archive (docker's classic `docker save` layout: manifest.json, a config
/// named by its digest, `<id>/layer.tar` per layer, `repositories`) to `out`.
/// Returns the config digest, which is the image ID.
pub fn write_docker_archive(
    out: &Path,
    repo_tags: &[&str],
    layers: &[PathBuf],
    diff_ids: DiffIds,
) -> String {
    let computed: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_file(l)))
        .collect();
    let diff_ids = match diff_ids {
        DiffIds::Computed => computed.clone(),
        DiffIds::Given(v) => v,
    };
    let history: Vec<serde_json::Value> = (0..layers.len())
        .map(|i| json!({"created": "2023-11-14T22:13:20Z", "created_by": format!("/bin/sh -c #(nop) test layer {}", i + 1)}))
        .collect();
    let config = json!({
        "architecture": goarch(),
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let config_hex = sha256_hex(&config_bytes);
    let config_name = format!("{config_hex}.json");

    let layer_names: Vec<String> = computed
        .iter()
        .map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:")))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }]);
    let mut repositories = serde_json::Map::new();
    if let Some(top) = computed.last() {
        for rt in repo_tags {
            if let Some((repo, tag)) = rt.rsplit_once(':') {
                let entry = repositories
                    .entry(repo.to_string())
                    .or_insert_with(|| json!({}));
                entry[tag] = json!(top.trim_start_matches("sha256:"));
            }
        }
    }

    let f = fs::File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let mut b = tar::Builder::new(io::BufWriter::new(f));
    let add = |b: &mut tar::Builder<io::BufWriter<fs::File>>,
               name: &str,
               size: u64,
               data: &mut dyn Read| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(size);
        b.append_data(&mut h, name, data)
            .expect("append to docker-archive");
    };
    for (i, layer) in layers.iter().enumerate() {
        let id = computed[i].trim_start_matches("sha256:");
        let mut dh = tar::Header::new_ustar();
        dh.set_entry_type(tar::EntryType::Directory);
        dh.set_mode(0o755);
        dh.set_mtime(0);
        dh.set_size(0);
        b.append_data(&mut dh, format!("{id}/"), io::empty())
            .expect("append layer dir");
        let mut lf = fs::File::open(layer).expect("open layer");
        let size = lf.metadata().expect("stat layer").len();
        add(&mut b, &layer_names[i], size, &mut lf);
    }
    add(
        &mut b,
        &config_name,
        config_bytes.len() as u64,
        &mut config_bytes.as_slice(),
    );
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
    add(
        &mut b,
        "manifest.json",
        manifest_bytes.len() as u64,
        &mut manifest_bytes.as_slice(),
    );
    if !repositories.is_empty() {
        let r = serde_json::to_vec(&serde_json::Value::Object(repositories))
            .expect("repositories json");
        add(&mut b, "repositories", r.len() as u64, &mut r.as_slice());
    }
    let mut w = b.into_inner().expect("finish docker-archive");
    w.flush().expect("flush docker-archive");
    format!("sha256:{config_hex}")
}

/// Pseudo-random, incompressible bytes (xorshift64*), deterministic per seed.
pub struct NoiseReader {
    state: u64,
    left: u64,
}

impl NoiseReader {
    pub fn new(seed: u64, len: u64) -> NoiseReader {
        NoiseReader {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: len,
        }
    }
}

impl Read for NoiseReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A layer tar file holding one directory and one `size`-byte file of noise.
pub fn write_noise_layer(out: &Path, dir: &str, seed: u64, size: u64) {
    let f = fs::File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let mut b = tar::Builder::new(io::BufWriter::new(f));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_mtime(MTIME);
    h.set_size(0);
    b.append_data(&mut h, format!("{dir}/"), io::empty())
        .expect("append dir");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(MTIME);
    h.set_size(size);
    b.append_data(
        &mut h,
        format!("{dir}/noise.bin"),
        NoiseReader::new(seed, size),
    )
    .expect("append noise");
    let mut w = b.into_inner().expect("finish noise layer");
    w.flush().expect("flush noise layer");
}
