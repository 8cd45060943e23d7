//! A RUN's output through a pipe, drained by a thread, so that it is seen while the step
//! runs; and the splitting of that stream into lines.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Result;

/// What a drained pipe's bytes go to.
pub(super) trait Sink: Send {
    fn chunk(&mut self, bytes: &[u8]);
    /// The pipe was closed by every writer.
    fn end(&mut self);
}

/// How long a step's end waits for its output pipe to be closed. The runtime has removed
/// the container by then, so only something that escaped it could still hold the pipe.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A thread copying a pipe's read end into a [`Sink`].
pub(super) struct Drain {
    done: mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

/// A pipe whose write end goes to a RUN and whose read end a thread drains into `sink`.
pub(super) fn drain(sink: impl Sink + 'static) -> Result<(OwnedFd, Drain)> {
    // std's pipe is close-on-exec: only the container, which gets it as its stdout and
    // stderr explicitly, holds the write end.
    let (mut reader, writer) = io::pipe()?;
    let (tx, done) = mpsc::channel();
    let mut sink = sink;
    let handle = thread::Builder::new()
        .name("build-output".to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.chunk(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("reading a RUN's output: {e}");
                        break;
                    }
                }
            }
            sink.end();
            drop(sink);
            let _ = tx.send(());
        })?;
    Ok((writer.into(), Drain { done, handle }))
}

impl Drain {
    /// Waits until all the output was read (or gives up, see [`DRAIN_TIMEOUT`]).
    pub(super) fn wait(self) {
        if self.done.recv_timeout(DRAIN_TIMEOUT).is_ok() {
            let _ = self.handle.join();
        } else {
            log::warn!("a RUN step's output stayed open after the step ended; not waiting for it");
        }
    }
}

/// Splits a byte stream into lines (without their `\n`), keeping a partial last line.
#[derive(Default)]
pub(super) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub(super) fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                emit(&rest[..i]);
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                emit(&std::mem::take(&mut self.partial));
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    pub(super) fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&std::mem::take(&mut self.partial));
        }
    }
}

/// A line as text, as `str::lines` would give it (no trailing `\r`).
pub(super) fn line_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_the_last_partial_line_is_kept() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.push(b"ab", |l| got.push(line_text(l)));
        s.push(b"c\nd\r\ne", |l| got.push(line_text(l)));
        s.finish(|l| got.push(line_text(l)));
        assert_eq!(got, ["abc", "d", "e"]);
    }
}
