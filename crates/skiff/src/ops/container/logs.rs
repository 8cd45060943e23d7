//! `skiff logs`: the container's json-file log, filtered by time and tail, optionally
//! followed while the container runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use time::OffsetDateTime;

use super::reconcile;
use super::store::{parse_time, Container, ContainerStore};
use crate::ops::engine::Engine;

#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    /// `--tail N`; `None` for all.
    pub tail: Option<usize>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// One log entry.
pub struct LogEntry {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    pub time: OffsetDateTime,
    pub text: Vec<u8>,
}

#[derive(Deserialize)]
struct Raw {
    log: String,
    stream: String,
    time: String,
}

fn parse_line(line: &str) -> Option<LogEntry> {
    let raw: Raw = serde_json::from_str(line).ok()?;
    Some(LogEntry {
        stream: if raw.stream == "stderr" { 2 } else { 1 },
        time: parse_time(&raw.time).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        text: raw.log.into_bytes(),
    })
}

/// Feeds the entries of `c`'s log that pass `opts` to `sink`, in order; with `follow`,
/// keeps feeding new ones until the container stops (or `sink` fails, e.g. a closed pipe).
pub fn logs(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    opts: &LogsOptions,
    sink: &mut dyn FnMut(&LogEntry) -> Result<()>,
) -> Result<()> {
    let path = store.log_path(&c.id);
    let file = match File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    let wanted = |e: &LogEntry| {
        opts.since.is_none_or(|s| e.time >= s) && opts.until.is_none_or(|u| e.time <= u)
    };
    let Some(file) = file else {
        return Ok(());
    };
    let mut reader = BufReader::new(file);
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut line = String::new();
    let mut pos = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).context("reading the log")?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Some(e) = parse_line(&line) {
            if wanted(&e) {
                if opts.tail.is_some() || !opts.follow {
                    entries.push(e);
                } else {
                    sink(&e)?;
                }
            }
        }
    }
    let skip = match opts.tail {
        Some(n) => entries.len().saturating_sub(n),
        None => 0,
    };
    for e in &entries[skip..] {
        sink(e)?;
    }
    if !opts.follow {
        return Ok(());
    }
    // Follow: read what is appended until the container is no longer running and nothing
    // more is left to read.
    loop {
        let running = match reconcile::state(engine.root(), store, c) {
            Ok(s) => s.running,
            Err(_) => false,
        };
        reader
            .seek(SeekFrom::Start(pos))
            .context("reading the log")?;
        let mut progressed = false;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).context("reading the log")?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            progressed = true;
            if let Some(e) = parse_line(&line) {
                if opts.until.is_some_and(|u| e.time > u) {
                    return Ok(());
                }
                if wanted(&e) {
                    sink(&e)?;
                }
            }
        }
        if !running && !progressed {
            return Ok(());
        }
        if opts.until.is_some_and(|u| OffsetDateTime::now_utc() > u) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
