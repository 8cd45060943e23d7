//! Writing the changes of a directory tree as an uncompressed layer tar.
//!
//! The walk is depth-first with each directory's entries sorted by their name in the tar
//! (bytes), so parents always come before their children and the same tree always gives the
//! same bytes (see `layer::tarwrite` for the header choices). Every changed entry is
//! preceded by its parent directories (as containerd does), so that a layer never depends on
//! the metadata a lower layer happens to give a directory. A non-directory with several links
//! is written once; later paths to the same inode become hardlink entries to the first.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::{io_err, LayerError};
use super::tarwrite::{Kind, TarEntry, TarWriter};
use super::{is_skipped_xattr, OPAQUE_MARKER, WHITEOUT_PREFIX};

/// Where the changes come from.
#[derive(Debug, Clone, Copy)]
pub enum DiffSource<'a> {
    /// The upper directory of an overlay mount: everything in it is a change; 0/0 character
    /// devices become `.wh.NAME` and `trusted.overlay.opaque=y` directories get a
    /// `.wh..wh..opq` entry. Uppers using `redirect_dir` or `metacopy` are refused (their
    /// content is partly in the lower layers): use `Compare` for those.
    OverlayUpper { upper: &'a Path },
    /// Two full trees: entries of `upper` that are new or whose type, mode, owner, size,
    /// mtime (ns), xattrs, link target or device differ from `lower`'s, and `.wh.NAME` for
    /// what `lower` has and `upper` not. Contents are not compared (docker's naive diff).
    /// `lower: None` writes all of `upper`.
    Compare {
        lower: Option<&'a Path>,
        upper: &'a Path,
    },
}

#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Clamp every mtime to at most this (seconds since the epoch), for reproducible builds.
    pub source_date_epoch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// Bytes of tar written.
    pub size: u64,
    /// Entries written (whiteouts included, PAX headers not).
    pub entries: u64,
}

/// Writes the changes described by `source` to `out` as an uncompressed tar.
pub fn write_layer(
    source: DiffSource<'_>,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<DiffStats, LayerError> {
    let (upper, lower, overlay) = match source {
        DiffSource::OverlayUpper { upper } => (upper, None, true),
        DiffSource::Compare { lower, upper } => (upper, lower, false),
    };
    let mut d = Differ {
        tar: TarWriter::new(out),
        epoch: opts.source_date_epoch,
        overlay,
        links: HashMap::new(),
        chain: Vec::new(),
    };
    if overlay && read_xattrs(upper, true)?.opaque {
        d.tar
            .append(&TarEntry::marker(OPAQUE_MARKER.to_vec()), None)
            .map_err(|source| LayerError::Write { source })?;
    }
    d.walk(b"", upper, lower)?;
    let (size, entries) = d
        .tar
        .finish()
        .map_err(|source| LayerError::Write { source })?;
    Ok(DiffStats { size, entries })
}

/// Writes single entries of an overlay upper directory, with exactly the headers
/// [`write_layer`] gives them, between blocks copied from an earlier layer (see `splice`).
pub(super) struct EntryWriter<W: Write>(Differ<W>);

impl<W: Write> EntryWriter<W> {
    pub(super) fn new(out: W, opts: &DiffOptions) -> Self {
        EntryWriter(Differ {
            tar: TarWriter::new(out),
            epoch: opts.source_date_epoch,
            overlay: true,
            links: HashMap::new(),
            chain: Vec::new(),
        })
    }

    /// Writes the non-directory `abs` of the upper directory as the entry `rel`.
    pub(super) fn write_path(&mut self, rel: &[u8], abs: &Path) -> Result<(), LayerError> {
        let meta = fs::symlink_metadata(abs).map_err(io_err(abs, "lstat"))?;
        if meta.is_dir() || (meta.file_type().is_char_device() && meta.rdev() == 0) {
            return Err(LayerError::Unrepresentable {
                path: abs.to_owned(),
                reason: "only files and symlinks are written alone".into(),
            });
        }
        let xattrs = read_xattrs(abs, true)?;
        self.0.write_entry(rel, abs, &meta, xattrs.list)
    }

    /// Copies whole blocks of entries (`entries` of them) unchanged.
    pub(super) fn write_raw(&mut self, bytes: &[u8], entries: u64) -> Result<(), LayerError> {
        self.0
            .tar
            .append_raw(bytes, entries)
            .map_err(|source| LayerError::Write { source })
    }

    pub(super) fn finish(self) -> Result<DiffStats, LayerError> {
        let (size, entries) = self
            .0
            .tar
            .finish()
            .map_err(|source| LayerError::Write { source })?;
        Ok(DiffStats { size, entries })
    }
}

struct Differ<W: Write> {
    tar: TarWriter<W>,
    epoch: Option<i64>,
    overlay: bool,
    /// First path written for each multiply-linked (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    /// The directories above the current one, and whether each was written yet.
    chain: Vec<(Vec<u8>, PathBuf, bool)>,
}

enum Item {
    Upper { name: Vec<u8>, meta: Metadata },
    Whiteout,
}

impl<W: Write> Differ<W> {
    /// Visits the directory `upper` (at `rel` in the tar; `lower` is the same directory in the
    /// lower tree, when it exists there as a directory).
    fn walk(&mut self, rel: &[u8], upper: &Path, lower: Option<&Path>) -> Result<(), LayerError> {
        let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
        for entry in fs::read_dir(upper).map_err(io_err(upper, "read directory"))? {
            let entry = entry.map_err(io_err(upper, "read directory"))?;
            let name = entry.file_name().as_bytes().to_vec();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path, "lstat"))?;
            if self.overlay && meta.file_type().is_char_device() && meta.rdev() == 0 {
                items.push(([WHITEOUT_PREFIX, &name].concat(), Item::Whiteout));
                continue;
            }
            if name.starts_with(WHITEOUT_PREFIX) {
                return Err(LayerError::Unrepresentable {
                    path,
                    reason: "names starting with \".wh.\" are reserved for whiteouts in layers"
                        .into(),
                });
            }
            items.push((name.clone(), Item::Upper { name, meta }));
        }
        if let Some(lower) = lower {
            for entry in fs::read_dir(lower).map_err(io_err(lower, "read directory"))? {
                let entry = entry.map_err(io_err(lower, "read directory"))?;
                let name = entry.file_name().as_bytes().to_vec();
                let in_upper = upper.join(entry.file_name());
                match fs::symlink_metadata(&in_upper) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        items.push(([WHITEOUT_PREFIX, &name].concat(), Item::Whiteout));
                    }
                    Err(e) => return Err(io_err(&in_upper, "lstat")(e)),
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));

        for (out_name, item) in items {
            let child_rel = child(rel, &out_name);
            match item {
                Item::Whiteout => {
                    self.write_parents()?;
                    self.append(&TarEntry::marker(child_rel), None)?;
                }
                Item::Upper { name, meta } => {
                    let os_name = std::ffi::OsStr::from_bytes(&name);
                    let (abs, lower_abs) = (upper.join(os_name), lower.map(|l| l.join(os_name)));
                    self.visit(child_rel, &abs, lower_abs.as_deref(), &meta)?;
                }
            }
        }
        Ok(())
    }

    fn visit(
        &mut self,
        rel: Vec<u8>,
        abs: &Path,
        lower: Option<&Path>,
        meta: &Metadata,
    ) -> Result<(), LayerError> {
        let xattrs = read_xattrs(abs, self.overlay)?;
        let lower_meta = lower.and_then(|l| fs::symlink_metadata(l).ok().map(|m| (l, m)));
        let (changed, lower_dir) = match lower_meta {
            Some((l, lm)) if lm.file_type() == meta.file_type() => {
                let lx = read_xattrs(l, false)?;
                (
                    differs(&lm, meta, l, abs)? || lx.list != xattrs.list,
                    Some(l),
                )
            }
            _ => (true, None),
        };
        let is_dir = meta.is_dir();
        if changed {
            self.write_parents()?;
            self.write_entry(&rel, abs, meta, xattrs.list)?;
            if xattrs.opaque {
                self.append(&TarEntry::marker(child(&rel, OPAQUE_MARKER)), None)?;
            }
        }
        if is_dir {
            self.chain.push((rel.clone(), abs.to_owned(), changed));
            let r = self.walk(&rel, abs, lower_dir);
            self.chain.pop();
            r?;
        }
        Ok(())
    }

    /// Writes the directories above the current entry that were not written yet.
    fn write_parents(&mut self) -> Result<(), LayerError> {
        for i in 0..self.chain.len() {
            if self.chain[i].2 {
                continue;
            }
            let (rel, abs, _) = self.chain[i].clone();
            let meta = fs::symlink_metadata(&abs).map_err(io_err(&abs, "lstat"))?;
            let xattrs = read_xattrs(&abs, self.overlay)?;
            self.write_entry(&rel, &abs, &meta, xattrs.list)?;
            self.chain[i].2 = true;
        }
        Ok(())
    }

    fn write_entry(
        &mut self,
        rel: &[u8],
        abs: &Path,
        meta: &Metadata,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), LayerError> {
        let ft = meta.file_type();
        if ft.is_socket() {
            log::debug!(
                "{}: sockets cannot be stored in a layer, skipped",
                abs.display()
            );
            return Ok(());
        }
        let mut kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::Regular { size: meta.len() }
        } else if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(io_err(abs, "readlink"))?;
            Kind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            let (major, minor) = (
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev()),
            );
            if ft.is_char_device() {
                Kind::Char { major, minor }
            } else {
                Kind::Block { major, minor }
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            return Err(LayerError::Unrepresentable {
                path: abs.to_owned(),
                reason: "unknown file type".into(),
            });
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            match self.links.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    kind = Kind::Hardlink {
                        target: first.clone(),
                    }
                }
                None => {
                    self.links.insert((meta.dev(), meta.ino()), rel.to_vec());
                }
            }
        }
        let mut mtime = meta.mtime().max(0);
        if let Some(epoch) = self.epoch {
            mtime = mtime.min(epoch.max(0));
        }
        let e = TarEntry {
            path: rel.to_vec(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: mtime as u64,
            xattrs,
        };
        if matches!(e.kind, Kind::Regular { size } if size > 0) {
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(abs)
                .map_err(io_err(abs, "open"))?;
            let mut reader = ErrorTrackingReader {
                inner: file,
                failed: None,
            };
            return match self.tar.append(&e, Some(&mut reader)) {
                Ok(()) => Ok(()),
                Err(source) => match reader.failed.take() {
                    Some(read) => Err(io_err(abs, "read")(read)),
                    None if source.kind() == io::ErrorKind::UnexpectedEof => {
                        Err(io_err(abs, "read")(source))
                    }
                    None => Err(LayerError::Write { source }),
                },
            };
        }
        self.append(&e, None)
    }

    fn append(&mut self, e: &TarEntry, data: Option<&mut dyn Read>) -> Result<(), LayerError> {
        self.tar
            .append(e, data)
            .map_err(|source| LayerError::Write { source })
    }
}

/// Remembers a read error, to tell a failing source file from a failing output.
struct ErrorTrackingReader {
    inner: File,
    failed: Option<io::Error>,
}

impl Read for ErrorTrackingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .inspect_err(|e| self.failed = Some(io::Error::new(e.kind(), e.to_string())))
    }
}

fn child(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// Whether an entry present in both trees with the same type changed.
fn differs(
    old: &Metadata,
    new: &Metadata,
    old_path: &Path,
    new_path: &Path,
) -> Result<bool, LayerError> {
    if old.mode() != new.mode()
        || old.uid() != new.uid()
        || old.gid() != new.gid()
        || old.mtime() != new.mtime()
        || old.mtime_nsec() != new.mtime_nsec()
        || old.rdev() != new.rdev()
        || (!new.is_dir() && old.len() != new.len())
    {
        return Ok(true);
    }
    if new.file_type().is_symlink() {
        let a = fs::read_link(old_path).map_err(io_err(old_path, "readlink"))?;
        let b = fs::read_link(new_path).map_err(io_err(new_path, "readlink"))?;
        return Ok(a != b);
    }
    Ok(false)
}

struct Xattrs {
    /// What goes into the tar, sorted by name.
    list: Vec<(Vec<u8>, Vec<u8>)>,
    /// `trusted.overlay.opaque` is `y`.
    opaque: bool,
}

/// Reads the xattrs of `path` (not following a symlink). With `overlay`, also looks at the
/// overlay's own xattrs: refuses redirects and metacopy, reports opaque directories.
fn read_xattrs(path: &Path, overlay: bool) -> Result<Xattrs, LayerError> {
    let mut out = Xattrs {
        list: Vec::new(),
        opaque: false,
    };
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(io_err(path, "list xattrs")(e)),
    };
    for name in names {
        let name = name.as_bytes();
        if overlay && (name == b"trusted.overlay.redirect" || name == b"trusted.overlay.metacopy") {
            return Err(LayerError::Unrepresentable {
                path: path.to_owned(),
                reason: format!(
                    "overlay upper uses {} (content lives in a lower layer): diff by comparing trees",
                    String::from_utf8_lossy(name)
                ),
            });
        }
        let os_name = std::ffi::OsStr::from_bytes(name);
        let value = match xattr::get(path, os_name) {
            Ok(Some(v)) => v,
            Ok(None) => continue, // removed meanwhile
            Err(e) => return Err(io_err(path, "read xattr")(e)),
        };
        if overlay && name == b"trusted.overlay.opaque" {
            out.opaque = value == b"y";
        }
        if !is_skipped_xattr(name) {
            out.list.push((name.to_vec(), value));
        }
    }
    out.list.sort();
    Ok(out)
}
