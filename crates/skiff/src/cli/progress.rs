//! Progress bars for long transfers: drawn on a terminal, silent in pipes and with `-q`.

use std::io::{self, Read, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte counter that draws a bar on stderr when it is a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// `total` is the expected byte count when known (a file), None for a stream.
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        if quiet || !super::output::interactive() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = if total.is_some() {
            "{msg} [{bar:50}] {bytes}/{total_bytes}"
        } else {
            "{msg} {bytes} {binary_bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        Progress { bar }
    }

    pub fn reader<R: Read>(&self, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            bar: self.bar.clone(),
        }
    }

    pub fn writer<W: Write>(&self, inner: W) -> ProgressWriter<W> {
        ProgressWriter {
            inner,
            bar: self.bar.clone(),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub struct ProgressReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

pub struct ProgressWriter<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W: Write> Write for ProgressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
