//! A deterministic tar writer: ustar headers, PAX records only where ustar cannot hold a value
//! (long names and link targets, big ids and sizes) and for xattrs (`SCHILY.xattr.NAME`),
//! numeric owners with empty user and group names, whole-second mtimes, no atime or ctime.
//! The same entries always give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};

use tar::{EntryType, Header};

const BLOCK: u64 = 512;
/// Output buffer: large writes to whatever compresses or hashes the tar.
const OUT_BUFFER: usize = 1 << 20;
/// Largest values the octal ustar fields hold (7 and 11 digits).
const MAX_OCTAL_ID: u64 = 0o7_777_777;
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;
/// Prefix of a PAX header's name, as Go's archive/tar writes it.
const PAX_NAME_PREFIX: &[u8] = b"PaxHeaders.0/";

/// What a tar entry is, with the data that only that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular { size: u64 },
    Dir,
    Symlink { target: Vec<u8> },
    Hardlink { target: Vec<u8> },
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

/// One entry's header. `path` is relative, `/`-separated, without a trailing slash.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TarEntry {
    /// An empty regular file owned by root with mode 0 and mtime 0: whiteout markers carry no
    /// metadata anyone reads, and fixed values keep layers reproducible.
    pub fn marker(path: Vec<u8>) -> Self {
        TarEntry {
            path,
            kind: Kind::Regular { size: 0 },
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }
}

pub(crate) struct TarWriter<W: Write> {
    out: BufWriter<W>,
    written: u64,
    entries: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        TarWriter {
            out: BufWriter::with_capacity(OUT_BUFFER, w),
            written: 0,
            entries: 0,
        }
    }

    /// Writes one entry. `data` must yield `size` bytes for a regular file and is not read
    /// for other kinds; a file that shrank meanwhile is an error (its header already promised
    /// the old size), one that grew is cut at the promised size.
    pub fn append(&mut self, e: &TarEntry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let (header, pax) = build_header(e);
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let mut h = Header::new_ustar();
            let base = e.path.rsplit(|&b| b == b'/').next().unwrap_or(&e.path);
            let mut name = PAX_NAME_PREFIX.to_vec();
            name.extend_from_slice(base);
            name.truncate(100);
            set_field(&mut h, Field::Name, &name);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(records.len() as u64);
            h.set_entry_type(EntryType::XHeader);
            h.set_cksum();
            self.write_block(h.as_bytes())?;
            self.out.write_all(&records)?;
            self.written += records.len() as u64;
            self.pad(records.len() as u64)?;
        }
        self.write_block(header.as_bytes())?;
        if let Kind::Regular { size } = e.kind {
            if size > 0 {
                let data = data.ok_or_else(|| io::Error::other("regular file without data"))?;
                let copied = io::copy(&mut data.take(size), &mut self.out)?;
                if copied != size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{:?} shrank from {size} to {copied} bytes while being read",
                            lossy(&e.path)
                        ),
                    ));
                }
                self.written += size;
                self.pad(size)?;
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// Copies `bytes`, whole blocks of entries another `TarWriter` wrote (headers, data and
    /// padding), unchanged: what a spliced layer reuses of an earlier one.
    pub fn append_raw(&mut self, bytes: &[u8], entries: u64) -> io::Result<()> {
        debug_assert_eq!(bytes.len() as u64 % BLOCK, 0);
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.entries += entries;
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks) and flushes. Returns the tar's size
    /// and the number of entries (PAX headers not counted).
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.out.write_all(&[0; 2 * BLOCK as usize])?;
        self.written += 2 * BLOCK;
        self.out.flush()?;
        Ok((self.written, self.entries))
    }

    fn write_block(&mut self, block: &[u8; 512]) -> io::Result<()> {
        self.out.write_all(block)?;
        self.written += BLOCK;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = len % BLOCK;
        if rem != 0 {
            let pad = (BLOCK - rem) as usize;
            self.out.write_all(&[0; BLOCK as usize][..pad])?;
            self.written += pad as u64;
        }
        Ok(())
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

enum Field {
    Name,
    Prefix,
    Linkname,
}

fn set_field(h: &mut Header, f: Field, value: &[u8]) {
    if let Some(u) = h.as_ustar_mut() {
        let dst: &mut [u8] = match f {
            Field::Name => &mut u.name,
            Field::Prefix => &mut u.prefix,
            Field::Linkname => &mut u.linkname,
        };
        let n = value.len().min(dst.len());
        dst[..n].copy_from_slice(&value[..n]);
    }
}

/// Splits a name into ustar's prefix (up to 155 bytes) and name (up to 100 bytes) at a `/`.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    // The slash may not be the last byte (the name part would be empty).
    let searchable = &name[..name.len() - 1];
    let i = searchable[..searchable.len().min(156)]
        .iter()
        .rposition(|&b| b == b'/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    (prefix.len() <= 155 && !rest.is_empty() && rest.len() <= 100).then_some((prefix, rest))
}

type Pax = BTreeMap<Vec<u8>, Vec<u8>>;

fn build_header(e: &TarEntry) -> (Header, Pax) {
    let mut pax = Pax::new();
    let mut h = Header::new_ustar();
    let mut name = e.path.clone();
    if e.kind == Kind::Dir {
        name.push(b'/');
    }
    match split_ustar(&name) {
        Some((prefix, rest)) => {
            set_field(&mut h, Field::Prefix, prefix);
            set_field(&mut h, Field::Name, rest);
        }
        None => {
            set_field(&mut h, Field::Name, &name);
            pax.insert(b"path".to_vec(), name.clone());
        }
    }
    let (ty, size) = match &e.kind {
        Kind::Regular { size } => (EntryType::Regular, *size),
        Kind::Dir => (EntryType::Directory, 0),
        Kind::Symlink { .. } => (EntryType::Symlink, 0),
        Kind::Hardlink { .. } => (EntryType::Link, 0),
        Kind::Char { .. } => (EntryType::Char, 0),
        Kind::Block { .. } => (EntryType::Block, 0),
        Kind::Fifo => (EntryType::Fifo, 0),
    };
    h.set_entry_type(ty);
    if let Kind::Symlink { target } | Kind::Hardlink { target } = &e.kind {
        set_field(&mut h, Field::Linkname, target);
        if target.len() > 100 {
            pax.insert(b"linkpath".to_vec(), target.clone());
        }
    }
    if let Kind::Char { major, minor } | Kind::Block { major, minor } = e.kind {
        if let Some(u) = h.as_ustar_mut() {
            u.set_device_major(major);
            u.set_device_minor(minor);
        }
    }
    h.set_mode(e.mode & 0o7777);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(size);
    for (key, value) in [(&b"uid"[..], e.uid), (b"gid", e.gid)] {
        if value > MAX_OCTAL_ID {
            pax.insert(key.to_vec(), value.to_string().into_bytes());
        }
    }
    if size > MAX_OCTAL_SIZE {
        pax.insert(b"size".to_vec(), size.to_string().into_bytes());
    }
    for (k, v) in &e.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.insert(key, v.clone());
    }
    h.set_cksum();
    (h, pax)
}

/// Encodes PAX records: `"<len> <key>=<value>\n"`, where `len` counts the whole record,
/// its own digits included.
fn pax_records(pax: &Pax) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pax {
        let base = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = base + base.to_string().len();
        if len.to_string().len() > base.to_string().len() {
            len += 1;
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(path: &[u8], kind: Kind) -> TarEntry {
        TarEntry {
            kind,
            ..TarEntry::marker(path.to_vec())
        }
    }

    fn write(entries: &[TarEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = TarWriter::new(&mut out);
        for e in entries {
            let mut data = &b"0123456789"[..];
            w.append(e, Some(&mut data)).unwrap();
        }
        let (size, n) = w.finish().unwrap();
        assert_eq!(size, out.len() as u64);
        assert_eq!(n, entries.len() as u64);
        out
    }

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let mut pax = Pax::new();
        pax.insert(b"path".to_vec(), vec![b'a'; 3]);
        assert_eq!(pax_records(&pax), b"12 path=aaa\n");
        pax.clear();
        // base 99 + 2 digits = 101, which has 3 digits: 102.
        pax.insert(b"path".to_vec(), vec![b'a'; 92]);
        let r = pax_records(&pax);
        assert_eq!(r.len(), 102);
        assert!(r.starts_with(b"102 path="));
    }

    #[test]
    fn long_names_links_and_xattrs_read_back() {
        let long: Vec<u8> = [&b"d/"[..], &[b'x'; 150], b"/", &[b'y'; 120]].concat();
        let mid: Vec<u8> = [&[b'p'; 120][..], b"/file"].concat();
        let mut xe = entry(b"x", Kind::Regular { size: 10 });
        xe.xattrs = vec![(b"user.a".to_vec(), vec![0, 1, 2, 255])];
        xe.uid = 5_000_000;
        let tar = write(&[
            entry(&long, Kind::Regular { size: 10 }),
            entry(&mid, Kind::Dir),
            entry(
                b"l",
                Kind::Symlink {
                    target: long.clone(),
                },
            ),
            xe,
            entry(b"dev", Kind::Char { major: 1, minor: 3 }),
        ]);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path_bytes().into_owned();
            let xattrs: Vec<_> = match e.pax_extensions().unwrap() {
                Some(p) => p.map(|x| x.unwrap().key().unwrap().to_owned()).collect(),
                None => vec![],
            };
            seen.push((
                path,
                e.header().uid().unwrap(),
                xattrs,
                e.link_name_bytes().map(|l| l.into_owned()),
            ));
        }
        assert_eq!(seen[0].0, long);
        assert_eq!(seen[1].0, [&mid[..], b"/"].concat());
        assert_eq!(seen[2].3.as_deref(), Some(&long[..]));
        assert_eq!(seen[3].1, 5_000_000);
        assert!(seen[3].2.contains(&"SCHILY.xattr.user.a".to_owned()));
        assert_eq!(seen[4].0, b"dev");
    }

    #[test]
    fn shrinking_file_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let mut data = &b"abc"[..];
        let err = w
            .append(&entry(b"f", Kind::Regular { size: 10 }), Some(&mut data))
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
