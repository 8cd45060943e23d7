//! Compression of layer blobs: detection by magic bytes, streaming decompression, and
//! compression that uses every core (zstd's own workers, gzip through `layer::pargz`).
//!
//! Layers in registries are gzip or zstd; bzip2 and xz are read (and written) too because
//! `docker load` and Dockerfile `ADD` accept them.

use std::fmt;
use std::io::{self, BufRead, Cursor, Read, Write};

use super::pargz::ParGzWriter;

/// Levels used when compressing. gzip's default matches docker's; zstd 3 is zstd's default.
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;
const BZIP2_LEVEL: u32 = 9;
const XZ_LEVEL: u32 = 6;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// The name used in flags and messages (`none`, `gzip`, `zstd`, `bzip2`, `xz`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest magic number we look for (xz's).
const MAGIC_LEN: usize = 6;

/// Detects the compression from the first bytes of a blob. Anything unrecognised is `None`
/// (a plain tar starts with a file name).
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if prefix.starts_with(b"BZh") {
        Compression::Bzip2
    } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// Sniffs the compression of `r` and returns a reader of the decompressed bytes.
///
/// Concatenated gzip members, zstd frames and bzip2 streams are all read (as `gzip -d` does).
pub fn decompressing_reader<'a>(
    mut r: impl BufRead + 'a,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let buffered = r.fill_buf()?;
    if buffered.len() >= MAGIC_LEN || buffered.is_empty() {
        let c = detect(buffered);
        return Ok((c, decoder(c, r)?));
    }
    // The reader handed out only a few bytes: collect the magic by hand, then put it back.
    let mut prefix = Vec::with_capacity(MAGIC_LEN);
    while prefix.len() < MAGIC_LEN {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(MAGIC_LEN - prefix.len());
        prefix.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    let c = detect(&prefix);
    Ok((c, decoder(c, Cursor::new(prefix).chain(r))?))
}

fn decoder<'a>(c: Compression, r: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(r)?;
            // Accept layers written with `zstd --long` (windows above the default 128 MiB cap).
            d.window_log_max(31)?;
            Box::new(d)
        }
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
    })
}

/// A writer that must be finished to write its trailer (and flush what it wraps).
pub trait FinishWrite: Write {
    /// Writes any buffered data and the format's trailer, then flushes the inner writer.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Returns a writer that compresses into `w`. gzip and zstd use all cores; the gzip output is
/// the same whatever the number of cores (fixed chunking), with a zero mtime in its header.
pub fn compressing_writer<'a>(
    w: impl Write + Send + 'a,
    c: Compression,
) -> io::Result<Box<dyn FinishWrite + 'a>> {
    Ok(match c {
        Compression::None => Box::new(Plain(w)),
        Compression::Gzip => Box::new(ParGzWriter::new(w, GZIP_LEVEL, threads())),
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
            e.include_checksum(true)?;
            let n = threads();
            if n > 1 {
                e.multithread(n)?;
            }
            Box::new(Zstd(e))
        }
        Compression::Bzip2 => Box::new(Bzip2(bzip2::write::BzEncoder::new(
            w,
            bzip2::Compression::new(BZIP2_LEVEL),
        ))),
        Compression::Xz => Box::new(Xz(liblzma::write::XzEncoder::new(w, XZ_LEVEL))),
    })
}

/// Worker threads for compression: the cores this process may run on.
fn threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

struct Plain<W>(W);
struct Zstd<'a, W: Write>(zstd::stream::write::Encoder<'a, W>);
struct Bzip2<W: Write>(bzip2::write::BzEncoder<W>);
struct Xz<W: Write>(liblzma::write::XzEncoder<W>);

macro_rules! delegate_write {
    ($($t:ty),*) => {$(
        impl<W: Write> Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write(buf)
            }
            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                self.0.write_all(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.flush()
            }
        }
    )*};
}
delegate_write!(Plain<W>, Zstd<'_, W>, Bzip2<W>, Xz<W>);

impl<W: Write> FinishWrite for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> FinishWrite for Zstd<'_, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

impl<W: Write> FinishWrite for Bzip2<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

impl<W: Write> FinishWrite for Xz<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, and longer than one parallel gzip chunk.
        (0..400_000u32)
            .flat_map(|i| ((i / 7) ^ (i % 251)).to_le_bytes())
            .collect()
    }

    fn round_trip(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        let mut w = compressing_writer(&mut blob, c).unwrap();
        for chunk in data.chunks(100_000) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(detect(&blob), c, "detect {c}");
        let mut out = Vec::new();
        {
            let (found, mut r) = decompressing_reader(&blob[..]).unwrap();
            assert_eq!(found, c);
            r.read_to_end(&mut out).unwrap();
        }
        assert_eq!(out.len(), data.len(), "{c}");
        assert!(out == data, "{c}: round trip differs");
        blob
    }

    #[test]
    fn every_compression_round_trips_and_is_detected() {
        let data = sample();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            let blob = round_trip(c, &data);
            if c != Compression::None {
                assert!(
                    blob.len() < data.len() / 2,
                    "{c} compressed to {}",
                    blob.len()
                );
            }
            round_trip(c, b"");
        }
    }

    #[test]
    fn parallel_gzip_is_read_by_a_standard_decoder() {
        let data = sample();
        let blob = round_trip(Compression::Gzip, &data);
        // flate2's single-member decoder must read the whole stream: one member, valid trailer.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
        assert_eq!(&blob[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    }

    #[test]
    fn gzip_output_is_deterministic() {
        let data = sample();
        assert_eq!(
            round_trip(Compression::Gzip, &data),
            round_trip(Compression::Gzip, &data)
        );
    }

    #[test]
    fn detects_by_magic_even_through_a_tiny_buffer() {
        let mut blob = Vec::new();
        let mut w = compressing_writer(&mut blob, Compression::Zstd).unwrap();
        w.write_all(b"hello").unwrap();
        w.finish().unwrap();
        // A BufReader of capacity 1 hands out one byte at a time.
        let (c, mut r) = decompressing_reader(BufReader::with_capacity(1, &blob[..])).unwrap();
        assert_eq!(c, Compression::Zstd);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
        let (c, mut r) = decompressing_reader(BufReader::with_capacity(1, &b"plain"[..])).unwrap();
        assert_eq!(c, Compression::None);
        out.clear();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "plain");
        assert_eq!(detect(b"ustar"), Compression::None);
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
    }
}
