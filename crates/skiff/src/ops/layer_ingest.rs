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
    let mut tee = Tee {
        inner: reader,
        out: &mut writer,
    };
    let size = {
        let mut archive = tar::Archive::new(TarEofPadding::new(&mut tee));
        let mut size = 0u64;
        let entries = archive.entries().map_err(|e| invalid_tar(what, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| invalid_tar(what, e))?;
            let kind = entry.header().entry_type();
            // Regular file bytes only, the same count `load` makes while streaming.
            if kind.is_file() || kind.is_contiguous() {
                size += entry.header().entry_size().unwrap_or(0);
            }
        }
        size
    };
    // The tar reader stops at the end-of-archive marker; the diff ID covers every byte.
    io::copy(&mut tee, &mut io::sink()).with_context(|| format!("reading {what}"))?;
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

fn invalid_tar(what: &str, e: io::Error) -> anyhow::Error {
    OpError::invalid(format!("{what} is not a valid tar archive: {e}")).into()
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
