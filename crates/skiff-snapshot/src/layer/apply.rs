//! Applying a layer blob to a directory.
//!
//! Two threads share the work: the caller's thread reads the blob, decompresses it and hashes
//! the tar (the diff_id covers every byte of the decompressed stream, trailing zero blocks and
//! padding included), and hands the bytes over a bounded channel to a worker that parses the
//! tar and creates the files (`unpack`). Decompression and file creation overlap.
//! Nothing is fsynced here: the snapshotter syncs the whole tree once (`syncfs`).

use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use skiff_image::digest::HashingReader;

use super::padding::TarEofPadding;
use skiff_image::Digest;

use super::compression::{decompressing_reader, Compression};
use super::error::LayerError;
use super::unpack::unpack;

/// Read buffer for the (usually compressed) input.
const INPUT_BUFFER: usize = 1 << 20;
/// Bytes per message to the unpacking thread, and messages in flight.
const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 16;

/// How whiteout entries (`.wh.NAME`, `.wh..wh..opq`) are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// The target is an overlayfs upper directory: `.wh.NAME` becomes a 0/0 character device
    /// `NAME`, and an opaque marker sets `trusted.overlay.opaque=y` on its directory, as
    /// docker's overlay2 and containerd's overlay snapshotter do.
    Overlay,
    /// The target is a full copy of the parent's tree (the vfs driver): `.wh.NAME` deletes
    /// `NAME`, and an opaque marker deletes whatever its directory holds that did not come
    /// from this same layer, wherever in the tar the marker is.
    Remove,
}

/// How to apply a layer. Owners are always set from the tar (skiff applies layers as root).
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the decompressed tar: the layer's diff_id.
    pub diff_id: Digest,
    /// Length of the decompressed tar in bytes.
    pub size: u64,
    /// The compression detected on the input.
    pub compression: Compression,
    /// Tar entries applied (whiteouts included, PAX headers not).
    pub entries: u64,
}

/// Applies the layer blob read from `reader` (plain tar, gzip, zstd, bzip2 or xz, detected)
/// to `target`, which must exist.
///
/// Every path is confined to `target`, as if the layer were applied in a chroot of it: an
/// entry whose `..` leaves it is refused, and symlinks among an entry's parent directories
/// are followed relative to `target` (an absolute target restarts there, `..` stops there),
/// so `lib/x` on a `lib -> usr/lib` tree writes `usr/lib/x`, and nothing is ever written
/// outside. A symlink loop or a dangling symlink among the parents is refused with an error
/// naming the entry (see `layer::path`). Entries applied before such an error stay in place:
/// the caller discards the whole snapshot.
pub fn apply_layer(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let read_err = |source| LayerError::Read {
        after: None,
        source,
    };
    let input = BufReader::with_capacity(INPUT_BUFFER, reader);
    let (compression, decoded) = decompressing_reader(input).map_err(read_err)?;
    let mut tar = HashingReader::new(decoded);
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let mode = opts.whiteouts;

    let entries = std::thread::scope(|s| {
        let worker =
            s.spawn(move || unpack(TarEofPadding::new(ChannelReader::new(rx)), target, mode));
        let pumped = pump(&mut tar, &tx);
        drop(tx);
        // The unpacker's error comes first: it explains a failed pump too, and when it failed
        // there is no point in reading the rest of the blob.
        let entries = match worker.join() {
            Ok(r) => r?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if !pumped.map_err(read_err)? {
            // The tar ended before the stream did: hash the rest (zero blocks, padding).
            io::copy(&mut tar, &mut io::sink()).map_err(read_err)?;
        }
        Ok::<_, LayerError>(entries)
    })?;

    let (diff_id, size) = tar.finish();
    Ok(ApplyStats {
        diff_id,
        size,
        compression,
        entries,
    })
}

/// Sends the bytes of `tar` to the unpacker until the input ends (`Ok(true)`) or the unpacker
/// stops listening (`Ok(false)`: the tar ended, or it failed).
fn pump(tar: &mut impl Read, tx: &SyncSender<io::Result<Vec<u8>>>) -> io::Result<bool> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = match fill(tar, &mut chunk) {
            Ok(n) => n,
            Err(e) => {
                // The unpacker reports the failure with the entry it was reading.
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        if n == 0 {
            return Ok(true);
        }
        chunk.truncate(n);
        if tx.send(Ok(chunk)).is_err() {
            return Ok(false);
        }
    }
}

/// Reads until `buf` is full or the input ends.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The unpacker's end of the channel, as a reader. A closed channel is the end of input.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
