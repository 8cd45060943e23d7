//! Storing a layer tar in the content store: decompress if needed, hash the uncompressed
//! stream (its digest is the diff ID), validate it as a tar and count its content size — in
//! one pass. Import, load, commit and build all store their layers through here.
//!
//! Local layers are kept uncompressed, as docker keeps them: `save` then streams them
//! without decompressing, and `push` compresses on all cores when it uploads.

use std::io::{self, BufReader, Read, Write};

use anyhow::{Context, Result};
use skiff_image::spec::media;
use skiff_image::store::LayerRecord;
use skiff_snapshot::layer::{decompressing_reader, TarEofPadding};

use super::engine::Engine;
use super::error::OpError;

/// Copies every byte read from `inner` into `out` as well.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Stores the (possibly compressed) layer tar read from `source`, returning its record.
/// `what` names the source in error messages.
pub fn ingest_layer(engine: &Engine, source: impl Read, what: &str) -> Result<LayerRecord> {
    let (_, reader) = decompressing_reader(BufReader::with_capacity(1 << 20, source))
        .with_context(|| format!("reading {what}"))?;
    let ingest_ref = format!("layer-{}-{:x}", std::process::id(), rand_suffix());
    let mut writer = engine.content.writer(&ingest_ref)?;
    writer.truncate()?;
    let size = count_layer(reader, &mut writer).map_err(|e| invalid_tar(what, e))?;
    let digest = writer.commit(None, None)?;
    let blob_size = engine.content.size(&digest)?;
    Ok(LayerRecord {
        diff_id: digest.clone(),
        blob: digest,
        media_type: media::OCI_LAYER.to_owned(),
        blob_size,
        size,
    })
}

/// Reads the uncompressed layer tar `reader` to its end, copying every byte into `out`, and
/// returns the layer's size as docker counts it: the sizes of what the layer puts on disk
/// (regular files, and symlinks by the length of their target, as `lstat` reports them;
/// hard links, directories, devices and whiteouts count nothing).
pub fn count_layer(reader: impl Read, out: impl Write) -> io::Result<u64> {
    let mut tee = Tee {
        inner: Counted::new(reader),
        out,
    };
    let mut size = 0u64;
    let mut next_header = 0u64;
    let result = {
        let mut archive = tar::Archive::new(TarEofPadding::new(&mut tee));
        (|| -> io::Result<()> {
            for entry in archive.entries()? {
                let entry = entry?;
                let kind = entry.header().entry_type();
                let data = entry.header().entry_size().unwrap_or(0);
                next_header = entry.raw_file_position() + data.div_ceil(512) * 512;
                if kind.is_file() || kind.is_contiguous() {
                    size += data;
                } else if kind.is_symlink() {
                    size += entry.link_name_bytes().map_or(0, |l| l.len() as u64);
                }
            }
            Ok(())
        })()
    };
    if let Err(e) = result {
        return Err(go_tar_error(e, next_header, &mut tee.inner));
    }
    // The tar reader stops at the end-of-archive marker; the diff ID covers every byte.
    io::copy(&mut tee, &mut io::sink())?;
    Ok(size)
}

/// What Go's `archive/tar` would have said about a tar the `tar` crate refused: a header
/// block the input ends inside is `unexpected EOF`, a whole block that is no header an
/// invalid header. `next_header` is where the refused header starts; the rest of `input` is
/// read to learn where the input ends.
pub(crate) fn go_tar_error<R: Read>(
    e: io::Error,
    next_header: u64,
    input: &mut Counted<R>,
) -> io::Error {
    if let Err(read_error) = io::copy(input, &mut io::sink()) {
        return read_error;
    }
    let msg = if next_header + 512 > input.n || e.kind() == io::ErrorKind::UnexpectedEof {
        "unexpected EOF"
    } else {
        "archive/tar: invalid tar header"
    };
    io::Error::new(e.kind(), msg)
}

/// Counts the bytes read through it.
pub(crate) struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R) -> Self {
        Counted { inner, n: 0 }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// docker's wording for a layer that is not a tar (the daemon's untar runs in a child
/// process, hence the exit status).
fn invalid_tar(_what: &str, e: io::Error) -> anyhow::Error {
    OpError::invalid(format!("Error processing tar file(exit status 1): {e}")).into()
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
