//! The recorder: every progress event on its way to the renderer is also written to the
//! build's record and log (`ops::build::history`).

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::Digest;

use super::pipe::{drain, line_text, Drain, LineSplitter, Sink};
use crate::ops::build::history::{BuildLog, NewRecord, StepRecord};
use crate::ops::build::{BuildOptions, Progress};

/// The build's record and log, fed by every progress event on the way to the renderer.
pub struct Recorder {
    inner: Box<dyn Progress + Send>,
    log: Option<BuildLog>,
    /// The current step: its number and when it started, and whether it has ended.
    step: Option<(usize, Instant, bool)>,
    drain: Option<Drain>,
    /// When the last step ended (the export's time runs from there).
    last_end: Instant,
    /// Whether a write to the log failed already (warned once).
    broken: bool,
}

impl Recorder {
    /// Starts the record of the build `opts` describes under `root`; a build whose record
    /// cannot be written still runs (with a warning).
    pub fn start(root: &Path, opts: &BuildOptions, inner: Box<dyn Progress + Send>) -> Recorder {
        let new = NewRecord {
            dockerfile: opts.dockerfile_name.clone(),
            context: opts.context.display().to_string(),
            tags: opts.tags.iter().map(Reference::familiar_string).collect(),
        };
        let log = match BuildLog::create(root, new) {
            Ok(l) => Some(l),
            Err(e) => {
                log::warn!("not recording this build: {e:#}");
                None
            }
        };
        Recorder {
            inner,
            log,
            step: None,
            drain: None,
            last_end: Instant::now(),
            broken: false,
        }
    }

    fn write(&mut self, text: &str) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if let Err(e) = log.append(text.as_bytes()) {
            if !self.broken {
                log::warn!("writing the build log: {e}");
                self.broken = true;
            }
        }
    }

    /// A line of the current step (`#N text`), or a bare line before the first step.
    fn line(&mut self, text: &str) {
        let line = match self.step {
            Some((n, ..)) => format!("#{n} {text}\n"),
            None => format!("{text}\n"),
        };
        self.write(&line);
    }

    /// Ends the current step (if it has not ended): its time and image in the record.
    fn end_step(&mut self, image: Option<&Digest>, cached: bool, elapsed: Option<Duration>) {
        let Some((n, started, ended)) = self.step.as_mut() else {
            return;
        };
        let elapsed = elapsed.unwrap_or_else(|| started.elapsed());
        let n = *n;
        *ended = true;
        self.last_end = Instant::now();
        if let Some(s) = self
            .log
            .as_mut()
            .and_then(|l| l.steps_mut().iter_mut().rev().find(|s| s.number == n))
        {
            s.cached = cached;
            s.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            s.image = image.map(ToString::to_string);
        }
    }

    /// A step that ended without an event of its own (an `ARG` before `FROM`).
    fn close_open_step(&mut self) {
        if let Some((_, started, false)) = self.step {
            let elapsed = started.elapsed();
            self.end_step(None, false, Some(elapsed));
            self.line(&format!("DONE {:.1}s", elapsed.as_secs_f64()));
        }
    }

    /// The build failed with `err`: the renderer shows it, the record keeps it.
    pub fn fail(&mut self, err: &anyhow::Error) {
        self.inner.failed();
        let text = crate::cli::output::error_message(err);
        self.end_record(Err(&text));
    }

    fn end_record(&mut self, result: std::result::Result<&str, &str>) {
        if let Some(d) = self.drain.take() {
            d.wait();
        }
        if let Err(text) = result {
            if let Some((_, started, ended)) = self.step {
                if !ended {
                    self.end_step(None, false, Some(started.elapsed()));
                }
            }
            self.line(&format!("ERROR: {text}"));
        }
        if let Some(log) = self.log.take() {
            if let Err(e) = log.finish(result) {
                log::warn!("writing the build record: {e:#}");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A build that ended without `finish` or `fail` (an error after the build itself,
        // a panic) is still recorded as ended.
        if self.log.is_some() {
            self.end_record(Err("the build did not finish"));
        }
    }
}

/// The recorder's end of a RUN's output: to the renderer as it is, to the log as lines.
struct TeeSink {
    renderer: File,
    log: File,
    prefix: String,
    lines: LineSplitter,
    /// Whether the renderer stopped taking output (it is not retried).
    renderer_gone: bool,
}

impl TeeSink {
    fn log_lines(&mut self, bytes: &[u8], end: bool) {
        let mut out = Vec::new();
        let prefix = &self.prefix;
        let mut emit = |line: &[u8]| {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line_text(line).as_bytes());
            out.push(b'\n');
        };
        self.lines.push(bytes, &mut emit);
        if end {
            self.lines.finish(&mut emit);
        }
        if !out.is_empty() {
            let _ = self.log.write_all(&out);
        }
    }
}

impl Sink for TeeSink {
    fn chunk(&mut self, bytes: &[u8]) {
        if !self.renderer_gone && self.renderer.write_all(bytes).is_err() {
            self.renderer_gone = true;
        }
        self.log_lines(bytes, false);
    }
    fn end(&mut self) {
        self.log_lines(&[], true);
    }
}

impl Progress for Recorder {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.inner.step(n, total, text);
        self.close_open_step();
        let first = self.step.is_none();
        self.step = Some((n, Instant::now(), false));
        self.write(&format!(
            "{}#{n} [{n}/{total}] {text}\n",
            if first { "" } else { "\n" }
        ));
        if let Some(log) = self.log.as_mut() {
            log.steps_mut().push(StepRecord {
                number: n,
                text: text.to_owned(),
                cached: false,
                duration_ms: 0,
                image: None,
            });
        }
    }
    fn base(&mut self, id: Option<&Digest>) {
        self.inner.base(id);
        if let Some(id) = id {
            self.line(&format!("resolve {id} done"));
        }
        let elapsed = self.step.map(|(_, s, _)| s.elapsed()).unwrap_or_default();
        self.end_step(id, false, Some(elapsed));
        self.line(&format!("DONE {:.1}s", elapsed.as_secs_f64()));
    }
    fn cached(&mut self, id: &Digest) {
        self.inner.cached(id);
        self.end_step(Some(id), true, None);
        self.line("CACHED");
    }
    fn running(&mut self, container: &str) {
        self.inner.running(container);
    }
    fn run_output(&mut self) -> Result<OwnedFd> {
        let downstream = self.inner.run_output()?;
        let Some(log) = self.log.as_ref() else {
            return Ok(downstream);
        };
        let log = match log.log_handle() {
            Ok(f) => f,
            Err(e) => {
                log::warn!("RUN output will not be in the build log: {e}");
                return Ok(downstream);
            }
        };
        let prefix = match self.step {
            Some((n, ..)) => format!("#{n} "),
            None => String::new(),
        };
        let (fd, drain) = drain(TeeSink {
            renderer: File::from(downstream),
            log,
            prefix,
            lines: LineSplitter::default(),
            renderer_gone: false,
        })?;
        self.drain = Some(drain);
        Ok(fd)
    }
    fn run_done(&mut self) {
        // All the output reaches the renderer before it is told the RUN ended.
        if let Some(d) = self.drain.take() {
            d.wait();
        }
        self.inner.run_done();
    }
    fn done(&mut self, id: &Digest, elapsed: Duration) {
        self.inner.done(id, elapsed);
        self.end_step(Some(id), false, Some(elapsed));
        self.line(&format!("DONE {:.1}s", elapsed.as_secs_f64()));
    }
    fn explain(&mut self, why: &str) {
        self.inner.explain(why);
        self.line(&format!("cache miss: {why}"));
    }
    fn note(&mut self, text: &str) {
        self.inner.note(text);
        self.line(text);
    }
    fn finish(&mut self, id: &Digest, tags: &[Reference], unused: &[String]) {
        self.inner.finish(id, tags, unused);
        self.close_open_step();
        let n = self.step.map_or(1, |(n, ..)| n + 1);
        let mut text = format!("\n#{n} exporting to image\n#{n} writing image {id} done\n");
        for t in tags {
            text.push_str(&format!("#{n} naming to {t} done\n"));
        }
        text.push_str(&format!(
            "#{n} DONE {:.1}s\n",
            self.last_end.elapsed().as_secs_f64()
        ));
        if !unused.is_empty() {
            text.push_str(&format!(
                "WARNING: one or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ));
        }
        self.write(&text);
        self.end_record(Ok(&id.to_string()));
    }
    fn failed(&mut self) {
        // `fail` is the way in: it knows the error.
        self.inner.failed();
    }
}
