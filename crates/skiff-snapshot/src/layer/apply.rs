//! Applying a layer blob to a directory.
//!
//! Three threads share the work: the caller's thread reads the blob and decompresses it, and
//! hands each chunk of the tar (shared, not copied) over bounded channels to two workers: one
//! hashes it (the diff_id covers every byte of the decompressed stream, trailing zero blocks
//! and padding included), the other parses the tar and creates the files (`unpack`).
//! Decompression, hashing and file creation overlap.
//! Nothing is fsynced here: the snapshotter syncs the whole tree once (`syncfs`).

use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::ScopedJoinHandle;

use skiff_image::digest::Hasher;

use super::padding::TarEofPadding;
use skiff_image::Digest;

use super::compression::{decompressing_reader, Compression};
use super::error::LayerError;
use super::unpack::unpack;

/// Read buffer for the (usually compressed) input.
const INPUT_BUFFER: usize = 1 << 20;
/// Bytes per message to the hashing and unpacking threads, and messages in flight to each.
const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 16;

/// A chunk of the decompressed tar, shared by the hasher and the unpacker.
type Chunk = Arc<Vec<u8>>;

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
    let (compression, mut tar) = decompressing_reader(input).map_err(read_err)?;
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let (hash_tx, hash_rx) = sync_channel::<Chunk>(IN_FLIGHT);
    let mode = opts.whiteouts;

    let (entries, hasher) = std::thread::scope(|s| {
        let hashing = s.spawn(move || {
            let mut hasher = Hasher::new();
            for chunk in hash_rx {
                hasher.update(&chunk);
            }
            hasher
        });
        let worker =
            s.spawn(move || unpack(TarEofPadding::new(ChannelReader::new(rx)), target, mode));
        let pumped = pump(&mut tar, tx, worker, &hash_tx);
        drop(hash_tx);
        let hasher = join(hashing);
        // The unpacker's error comes first: it explains a failed read too.
        let entries = pumped.entries?;
        pumped.read.map_err(read_err)?;
        Ok::<_, LayerError>((entries, hasher))
    })?;

    let size = hasher.len();
    Ok(ApplyStats {
        diff_id: hasher.finish(),
        size,
        compression,
        entries,
    })
}

/// What `pump` ends with: the unpacker's result, and whether reading the input failed.
struct Pumped {
    entries: Result<u64, LayerError>,
    read: io::Result<()>,
}

/// Sends the bytes of `tar` to the hasher and the unpacker until the input ends. When the
/// unpacker stops listening, it is joined: if it failed, reading stops there (there is no point
/// in reading the rest of the blob); if the tar ended, the rest (zero blocks, padding, whatever
/// follows) still goes to the hasher.
fn pump<'scope>(
    tar: &mut impl Read,
    tx: SyncSender<io::Result<Chunk>>,
    worker: ScopedJoinHandle<'scope, Result<u64, LayerError>>,
    hash_tx: &SyncSender<Chunk>,
) -> Pumped {
    let mut tx = Some(tx);
    let mut worker = Some(worker);
    let mut entries = None;
    let read = loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match fill(tar, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                // The unpacker reports the failure with the entry it was reading.
                if let Some(tx) = &tx {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                break Err(e);
            }
        };
        if n == 0 {
            break Ok(());
        }
        buf.truncate(n);
        let chunk = Arc::new(buf);
        if let Some(sender) = &tx {
            if sender.send(Ok(Arc::clone(&chunk))).is_err() {
                // The unpacker is done: the tar ended, or it failed.
                tx = None;
                let r = join(worker.take().expect("unpacker joined once"));
                let failed = r.is_err();
                entries = Some(r);
                if failed {
                    break Ok(());
                }
            }
        }
        if hash_tx.send(chunk).is_err() {
            // Only a panic stops the hasher; joining it re-raises that.
            break Ok(());
        }
    };
    drop(tx);
    let entries = match worker {
        Some(w) => join(w),
        None => entries.expect("unpacker result kept"),
    };
    Pumped { entries, read }
}

/// Joins a scoped thread, re-raising its panic.
fn join<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
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
    rx: Receiver<io::Result<Chunk>>,
    cur: Chunk,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<io::Result<Chunk>>) -> Self {
        ChannelReader {
            rx,
            cur: Arc::new(Vec::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `pump` over `input` with an unpacker that reads `take` bytes and then returns
    /// `result`; gives what `pump` returned, the bytes the hasher saw, and the bytes the
    /// unpacker read.
    fn run(input: &[u8], take: usize, result: Result<u64, ()>) -> (Pumped, Vec<u8>, Vec<u8>) {
        let mut reader = input;
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (hash_tx, hash_rx) = sync_channel::<Chunk>(IN_FLIGHT);
        let (seen_tx, seen_rx) = sync_channel(1);
        std::thread::scope(|s| {
            let hashing = s.spawn(move || hash_rx.into_iter().flat_map(|c| c.to_vec()).collect());
            let worker = s.spawn(move || {
                let mut seen = vec![0; take];
                ChannelReader::new(rx).read_exact(&mut seen).unwrap();
                seen_tx.send(seen).unwrap();
                result.map_err(|()| LayerError::InvalidEntry {
                    entry: "bad".into(),
                    reason: "test".into(),
                })
            });
            let pumped = pump(&mut reader, tx, worker, &hash_tx);
            drop(hash_tx);
            let hashed = join(hashing);
            (pumped, hashed, seen_rx.recv().unwrap())
        })
    }

    #[test]
    fn the_hasher_sees_everything_after_the_unpacker_is_done() {
        let input: Vec<u8> = (0..(IN_FLIGHT * 3 * CHUNK + 1234))
            .map(|i| (i % 251) as u8)
            .collect();
        let (pumped, hashed, unpacked) = run(&input, CHUNK + 10, Ok(7));
        assert_eq!(pumped.entries.unwrap(), 7);
        pumped.read.unwrap();
        assert_eq!(hashed, input);
        assert_eq!(unpacked, input[..CHUNK + 10]);
    }

    #[test]
    fn a_failed_unpacker_stops_the_reading() {
        let input = vec![5u8; IN_FLIGHT * 8 * CHUNK];
        let (pumped, hashed, _) = run(&input, 100, Err(()));
        assert!(pumped.entries.unwrap_err().to_string().contains("\"bad\""));
        pumped.read.unwrap();
        assert!(hashed.len() < input.len());
    }

    #[test]
    fn read_errors_reach_the_unpacker() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("broken blob"));
                }
                let n = self.0.min(buf.len());
                buf[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (hash_tx, hash_rx) = sync_channel::<Chunk>(IN_FLIGHT);
        std::thread::scope(|s| {
            s.spawn(move || hash_rx.into_iter().count());
            let worker = s.spawn(move || {
                let mut all = Vec::new();
                let e = ChannelReader::new(rx).read_to_end(&mut all).unwrap_err();
                assert_eq!(all.len(), 3 * CHUNK);
                Err(LayerError::InvalidEntry {
                    entry: "reading".into(),
                    reason: e.to_string(),
                })
            });
            let pumped = pump(&mut Failing(3 * CHUNK + 5), tx, worker, &hash_tx);
            drop(hash_tx);
            let e = pumped.entries.unwrap_err().to_string();
            assert!(
                e.contains("\"reading\"") && e.contains("broken blob"),
                "{e}"
            );
            assert!(pumped.read.is_err());
        });
    }
}
