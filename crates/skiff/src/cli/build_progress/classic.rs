//! docker's classic builder output and BuildKit's plain progress, as docker prints them.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::Digest;

use crate::cli::build::sending_line;
use crate::ops::build::{self, Progress};

fn dup_stdout() -> Result<OwnedFd> {
    io::stdout().flush()?;
    Ok(io::stdout().as_fd().try_clone_to_owned()?)
}

/// docker's classic builder output: on stdout, or with `-q` kept in memory and shown on
/// stderr only if the build fails (as docker's CLI does).
#[derive(Default)]
pub struct Classic {
    running: Option<String>,
    /// `-q`: the output so far, and the RUN output being captured.
    quiet: Option<Vec<u8>>,
    capture: Option<File>,
    /// `-q`: the context, whose size heads the output shown on failure.
    context: Option<PathBuf>,
}

impl Classic {
    pub(super) fn quiet(context: PathBuf) -> Classic {
        Classic {
            quiet: Some(Vec::new()),
            context: Some(context),
            ..Classic::default()
        }
    }

    fn line(&mut self, text: &str) {
        match &mut self.quiet {
            Some(buf) => {
                buf.extend_from_slice(text.as_bytes());
                buf.push(b'\n');
            }
            None => println!("{text}"),
        }
    }
}

impl Progress for Classic {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.running = None;
        self.line(&format!("Step {n}/{total} : {text}"));
    }
    fn base(&mut self, id: Option<&Digest>) {
        self.line(&format!(" ---> {}", id.map_or("", |d| d.short())));
    }
    fn cached(&mut self, id: &Digest) {
        self.line(" ---> Using cache");
        self.line(&format!(" ---> {}", id.short()));
    }
    fn running(&mut self, container: &str) {
        self.line(&format!(" ---> Running in {container}"));
        self.running = Some(container.to_owned());
    }
    fn run_output(&mut self) -> Result<OwnedFd> {
        if self.quiet.is_none() {
            return dup_stdout();
        }
        let (f, fd) = build::capture()?;
        self.capture = Some(f);
        Ok(fd)
    }
    fn run_done(&mut self) {
        if let (Some(f), Some(buf)) = (self.capture.as_mut(), self.quiet.as_mut()) {
            if let Ok(out) = build::read_captured(f) {
                buf.extend_from_slice(&out);
            }
        }
        self.capture = None;
    }
    fn done(&mut self, id: &Digest, _: Duration) {
        if let Some(c) = self.running.take() {
            self.line(&format!("Removing intermediate container {c}"));
        }
        self.line(&format!(" ---> {}", id.short()));
    }
    fn explain(&mut self, why: &str) {
        self.line(&format!(" ---> Cache miss: {why}"));
    }
    fn note(&mut self, text: &str) {
        self.line(text);
    }
    fn finish(&mut self, id: &Digest, tags: &[Reference], unused: &[String]) {
        if !unused.is_empty() {
            self.line(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            ));
        }
        self.line(&format!("Successfully built {}", id.short()));
        for t in tags {
            self.line(&format!("Successfully tagged {}", t.familiar_string()));
        }
    }
    fn failed(&mut self) {
        self.run_done();
        if let Some(buf) = &self.quiet {
            let head = self
                .context
                .as_deref()
                .map(sending_line)
                .unwrap_or_default();
            let _ = writeln!(io::stderr(), "{head}");
            let _ = io::stderr().write_all(buf);
        }
    }
}

/// BuildKit-style plain progress on stderr: `#3 [2/4] RUN ...`, `#3 CACHED`, `#3 DONE 0.1s`.
#[derive(Default)]
pub struct Plain {
    n: usize,
    capture: Option<File>,
}

impl Progress for Plain {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        self.n = n;
        eprintln!();
        eprintln!("#{n} [{n}/{total}] {text}");
    }
    fn base(&mut self, id: Option<&Digest>) {
        if let Some(id) = id {
            eprintln!("#{} resolve {id} done", self.n);
        }
        eprintln!("#{} DONE 0.0s", self.n);
    }
    fn cached(&mut self, _: &Digest) {
        eprintln!("#{} CACHED", self.n);
    }
    fn running(&mut self, _: &str) {}
    fn run_output(&mut self) -> Result<OwnedFd> {
        let (f, fd) = build::capture()?;
        self.capture = Some(f);
        Ok(fd)
    }
    fn run_done(&mut self) {
        if let Some(f) = self.capture.as_mut() {
            if let Ok(out) = build::read_captured(f) {
                // One write per 64 KiB, not per line: a RUN can print millions of lines.
                let mut w = io::BufWriter::with_capacity(64 << 10, io::stderr().lock());
                for line in String::from_utf8_lossy(&out).lines() {
                    let _ = writeln!(w, "#{} {line}", self.n);
                }
                let _ = w.flush();
            }
        }
        self.capture = None;
    }
    fn done(&mut self, _: &Digest, elapsed: Duration) {
        eprintln!("#{} DONE {:.1}s", self.n, elapsed.as_secs_f64());
    }
    fn explain(&mut self, why: &str) {
        eprintln!("#{} cache miss: {why}", self.n);
    }
    fn note(&mut self, text: &str) {
        eprintln!("#{} {text}", self.n);
    }
    fn finish(&mut self, id: &Digest, tags: &[Reference], unused: &[String]) {
        let n = self.n + 1;
        eprintln!();
        eprintln!("#{n} exporting to image");
        eprintln!("#{n} writing image {id} done");
        for t in tags {
            eprintln!("#{n} naming to {t} done");
        }
        eprintln!("#{n} DONE 0.0s");
        if !unused.is_empty() {
            eprintln!(
                "WARNING: one or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
    fn failed(&mut self) {}
}
