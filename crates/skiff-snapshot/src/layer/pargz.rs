//! Parallel gzip, the way pigz does it: the input is cut into fixed chunks, each chunk is
//! deflated on its own thread (primed with the previous chunk's last 32 KiB as dictionary, so
//! the ratio barely suffers) and ends with a sync flush, so the raw deflate outputs concatenate
//! into one valid stream. The CRC-32s of the chunks are combined in order for the trailer.
//!
//! The output depends only on the input and the level, never on the number of threads.
//! Compressed chunks are written to the inner writer on the caller's thread, in order, so the
//! inner writer needs no `'static` bound.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

use super::compression::FinishWrite;

/// Input per chunk.
const CHUNK: usize = 1 << 20;
/// Deflate's window: the most of the previous chunk a dictionary can use.
const DICT: usize = 32 * 1024;
/// gzip header: deflate, no flags, mtime 0, no extra flags, OS "unknown" (as Go writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Compressed {
    data: Vec<u8>,
    crc: crc32fast::Hasher,
}

pub(crate) struct ParGzWriter<W: Write> {
    inner: W,
    level: u32,
    buf: Vec<u8>,
    dict: Vec<u8>,
    pending: VecDeque<JoinHandle<io::Result<Compressed>>>,
    max_pending: usize,
    crc: crc32fast::Hasher,
    len: u64,
    header_written: bool,
}

impl<W: Write> ParGzWriter<W> {
    pub(crate) fn new(inner: W, level: u32, threads: u32) -> Self {
        ParGzWriter {
            inner,
            level,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            pending: VecDeque::new(),
            // Twice the workers keeps every core busy while the head chunk is written out.
            max_pending: 2 * threads.max(1) as usize,
            crc: crc32fast::Hasher::new(),
            len: 0,
            header_written: false,
        }
    }

    /// Hands the buffered chunk to a worker thread.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        if self.pending.len() >= self.max_pending {
            self.write_head()?;
        }
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::take(&mut self.dict);
        if !last {
            self.dict = input[input.len().saturating_sub(DICT)..].to_vec();
        }
        let level = self.level;
        self.pending.push_back(std::thread::spawn(move || {
            compress_chunk(&input, &dict, last, level)
        }));
        // Write out whatever is already done, so memory stays bounded by the window.
        while self.pending.front().is_some_and(|h| h.is_finished()) {
            self.write_head()?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk and writes it.
    fn write_head(&mut self) -> io::Result<()> {
        let Some(handle) = self.pending.pop_front() else {
            return Ok(());
        };
        let chunk = handle
            .join()
            .map_err(|_| io::Error::other("gzip compression thread panicked"))??;
        if !self.header_written {
            self.inner.write_all(&HEADER)?;
            self.header_written = true;
        }
        self.inner.write_all(&chunk.data)?;
        self.crc.combine(&chunk.crc);
        Ok(())
    }
}

fn compress_chunk(input: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Compressed> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).map_err(io::Error::other)?;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() == input.len() as u64;
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and the output did not fill up.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => break,
            Status::Ok | Status::BufError => {}
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    Ok(Compressed { data: out, crc })
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    /// Flushes only what is already compressed: a chunk is cut at fixed sizes, never early,
    /// so that the output does not depend on how the caller flushes.
    fn flush(&mut self) -> io::Result<()> {
        while self.pending.front().is_some_and(|h| h.is_finished()) {
            self.write_head()?;
        }
        self.inner.flush()
    }
}

impl<W: Write> FinishWrite for ParGzWriter<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_head()?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32.
        self.inner.write_all(&(self.len as u32).to_le_bytes())?;
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Box::new(ParGzWriter::new(&mut out, 6, threads));
        w.write_all(data).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let data: Vec<u8> = (0..5 * CHUNK as u32 + 17)
            .map(|i| (i % 97) as u8 ^ (i >> 11) as u8)
            .collect();
        let one = gz(&data, 1);
        assert_eq!(one, gz(&data, 8));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }

    #[test]
    fn exact_chunk_multiple_and_empty_input() {
        for len in [0, 1, CHUNK, 2 * CHUNK] {
            let data = vec![7u8; len];
            let blob = gz(&data, 4);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), len);
        }
    }
}
