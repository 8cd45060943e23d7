//! Response bodies (small JSON, streamed files) and request bodies streamed into the content
//! store's ingest. Nothing here holds more than a few chunks of a blob in memory.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use skiff_image::content::IngestWriter;

/// The body type of every response.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Size of one read from a blob file. A response holds at most two: one read ahead while
/// hyper writes the other.
const READ_CHUNK: usize = 256 * 1024;

/// Chunks of a request body in flight between the network and the disk writer.
const WRITE_QUEUE: usize = 8;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Streams `len` bytes of an open file from its current position.
///
/// Each chunk is read on the blocking pool straight into the buffer that becomes the frame
/// (no zeroing, no second copy as `tokio::fs::File` would make), so a byte is copied twice on
/// its way out: page cache -> buffer -> socket.
pub fn file(file: std::fs::File, len: u64) -> Body {
    FileBody {
        file: Some(file),
        remaining: len,
        reading: None,
    }
    .boxed_unsync()
}

type ReadResult = (std::fs::File, io::Result<Vec<u8>>);

struct FileBody {
    /// `None` while a read holds it.
    file: Option<std::fs::File>,
    remaining: u64,
    reading: Option<tokio::task::JoinHandle<ReadResult>>,
}

impl FileBody {
    /// Starts reading the next chunk on the blocking pool.
    fn start_read(&mut self, file: std::fs::File) {
        let want = usize::try_from(self.remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
        self.reading = Some(tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(want);
            // read_to_end fills the reserved capacity without initialising it first.
            let r = (&file).take(want as u64).read_to_end(&mut buf).map(|_| buf);
            (file, r)
        }));
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.reading.is_none() {
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            let Some(file) = this.file.take() else {
                return Poll::Ready(Some(Err(io::Error::other("blob file lost"))));
            };
            this.start_read(file);
        }
        let Some(handle) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let (file, result) = match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(done)) => done,
            Poll::Ready(Err(e)) => {
                this.reading = None;
                return Poll::Ready(Some(Err(io::Error::other(e))));
            }
        };
        this.reading = None;
        match result {
            Err(e) => Poll::Ready(Some(Err(e))),
            Ok(buf) if buf.is_empty() => {
                // The file is shorter than its recorded size: end with an error so the
                // client sees a cut transfer rather than a short success.
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file ended early",
                ))))
            }
            Ok(buf) => {
                this.remaining = this.remaining.saturating_sub(buf.len() as u64);
                // Read ahead while hyper writes this chunk: the disk and the socket overlap.
                if this.remaining > 0 {
                    this.start_read(file);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.reading.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Why streaming a request body into an ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("reading the request body: {0}")]
    Client(hyper::Error),
    #[error("writing the upload: {0}")]
    Disk(io::Error),
    #[error("upload writer failed")]
    Lost,
}

/// Appends a request body to an ingest: the network side reads frames while a blocking thread
/// writes and hashes them, with a short queue between the two. Returns the writer (unless its
/// thread died) and how many bytes were appended; on a client error, what arrived before it is
/// kept, so the upload can continue from there.
pub async fn pump(
    mut body: Incoming,
    writer: IngestWriter,
) -> (Option<IngestWriter>, Result<u64, PumpError>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = writer.write_all(&chunk) {
                return (writer, written, Err(e));
            }
            written += chunk.len() as u64;
        }
        (writer, written, Ok(()))
    });
    let mut client_err = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                client_err = Some(e);
                break;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        // The writer stopped on a disk error; it is reported below.
                        break;
                    }
                }
            }
        }
    }
    drop(tx);
    match task.await {
        Err(_) => (None, Err(PumpError::Lost)),
        Ok((writer, written, disk)) => {
            let result = match (disk, client_err) {
                (Err(e), _) => Err(PumpError::Disk(e)),
                (Ok(()), Some(e)) => Err(PumpError::Client(e)),
                (Ok(()), None) => Ok(written),
            };
            (Some(writer), result)
        }
    }
}

/// Reads a small request body whole, refusing more than `limit` bytes.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Vec<u8>, ReadLimitedError> {
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ReadLimitedError::TooLarge
            } else {
                ReadLimitedError::Client(e.to_string())
            }
        })?;
    Ok(collected.to_bytes().to_vec())
}

#[derive(Debug, thiserror::Error)]
pub enum ReadLimitedError {
    #[error("request body too large")]
    TooLarge,
    #[error("reading the request body: {0}")]
    Client(String),
}
