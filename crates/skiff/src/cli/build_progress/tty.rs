//! `--progress=tty`: a BuildKit-like view on stderr, one line per step with its time, the
//! running step's last output lines under it, redrawn in place at most ten times a second;
//! when stderr is not a terminal, the final view alone, without cursor movement.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::Digest;
use unicode_width::UnicodeWidthChar;

use super::pipe::{drain, line_text, Drain, LineSplitter, Sink};
use crate::ops::build::Progress;

/// How often the live view is redrawn at most.
const FRAME: Duration = Duration::from_millis(100);
/// Output lines of the running step shown under it.
const TAIL_LINES: usize = 6;
/// Output kept per step for the error report (the whole of it is in the build log).
const KEEP_OUTPUT_BYTES: usize = 4 << 20;
const KEEP_OUTPUT_LINES: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RowState {
    Running,
    Done,
    Cached,
    Error,
}

struct Row {
    n: usize,
    total: usize,
    text: String,
    state: RowState,
    started: Instant,
    elapsed: Duration,
    /// Lines shown under the step for good (why the cache missed).
    details: Vec<String>,
    /// The step's output (RUN output, pull progress, notes), kept while it runs.
    output: VecDeque<String>,
    output_bytes: usize,
    /// Output lines dropped to stay within [`KEEP_OUTPUT_BYTES`].
    dropped: usize,
}

impl Row {
    fn push_output(&mut self, line: String) {
        self.output_bytes += line.len();
        self.output.push_back(line);
        while self.output_bytes > KEEP_OUTPUT_BYTES || self.output.len() > KEEP_OUTPUT_LINES {
            let Some(old) = self.output.pop_front() else {
                break;
            };
            self.output_bytes -= old.len();
            self.dropped += 1;
        }
    }

    fn end(&mut self, state: RowState, elapsed: Option<Duration>) {
        self.state = state;
        self.elapsed = elapsed.unwrap_or_else(|| self.started.elapsed());
        if state != RowState::Error {
            self.output.clear();
            self.output_bytes = 0;
        }
    }
}

/// What the live view shows.
struct View {
    start: Instant,
    rows: Vec<Row>,
    /// Notes before the first step.
    notes: Vec<String>,
    /// `exporting to image`: its time and lines, once the build succeeded.
    export: Option<(Duration, Vec<String>)>,
    finished: bool,
    failed: bool,
    /// Lines of the live view on the screen now (0 when nothing is to be redrawn).
    drawn: usize,
    term: bool,
}

impl View {
    fn current(&mut self) -> Option<&mut Row> {
        self.rows.last_mut()
    }

    fn end_running(&mut self, state: RowState) {
        if let Some(r) = self.current() {
            if r.state == RowState::Running {
                r.end(state, None);
            }
        }
    }

    /// The lines of the view at `now`: `live` adds the running step's output tail; `width`
    /// truncates lines to the terminal's width (a line that wraps breaks the redraw).
    fn render(&self, now: Instant, width: Option<usize>, live: bool) -> Vec<String> {
        let done = self
            .rows
            .iter()
            .filter(|r| matches!(r.state, RowState::Done | RowState::Cached))
            .count();
        let total = self
            .rows
            .iter()
            .map(|r| r.total)
            .max()
            .unwrap_or(0)
            .max(self.rows.len());
        let mut out = vec![format!(
            "[+] Building {:.1}s ({done}/{total}){}",
            now.duration_since(self.start).as_secs_f64(),
            if self.finished && !self.failed {
                " FINISHED"
            } else {
                ""
            }
        )];
        for n in &self.notes {
            out.push(fit(&format!(" => {n}"), "", width));
        }
        for r in &self.rows {
            let prefix = match r.state {
                RowState::Cached => "CACHED ",
                RowState::Error => "ERROR ",
                RowState::Running | RowState::Done => "",
            };
            let elapsed = match r.state {
                RowState::Running => now.duration_since(r.started),
                _ => r.elapsed,
            };
            let line = fit(
                &format!(" => {prefix}[{}/{}] {}", r.n, r.total, r.text),
                &format!("{:.1}s", elapsed.as_secs_f64()),
                width,
            );
            out.push(if r.state == RowState::Error && self.term {
                format!("\x1b[31m{line}\x1b[0m")
            } else {
                line
            });
            for d in &r.details {
                out.push(fit(&format!(" => => {d}"), "", width));
            }
            if live && r.state == RowState::Running {
                let skip = r.output.len().saturating_sub(TAIL_LINES);
                for l in r.output.iter().skip(skip) {
                    let line = fit(&format!(" => => # {l}"), "", width);
                    out.push(if self.term {
                        format!("\x1b[2m{line}\x1b[0m")
                    } else {
                        line
                    });
                }
            }
        }
        if let Some((elapsed, lines)) = &self.export {
            out.push(fit(
                " => exporting to image",
                &format!("{:.1}s", elapsed.as_secs_f64()),
                width,
            ));
            for l in lines {
                out.push(fit(&format!(" => => {l}"), "", width));
            }
        }
        out
    }

    /// Redraws the view over the one on the screen (terminal only). The live view keeps to
    /// the screen's height; the final one is printed whole and not redrawn again.
    fn draw(&mut self, live: bool) {
        let (width, height) = term_size();
        let mut lines = self.render(Instant::now(), Some(width), live);
        if live && lines.len() + 1 > height {
            let keep = height.saturating_sub(2).max(1);
            let tail = lines.split_off(lines.len() - keep.min(lines.len() - 1));
            lines.truncate(1);
            lines.extend(tail);
        }
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            out.push('\r');
            out.push_str(l);
            out.push_str("\x1b[K\n");
        }
        out.push_str("\x1b[J");
        self.drawn = if live { lines.len() } else { 0 };
        let mut err = io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

/// The terminal's columns and rows (80x24 when unknown).
fn term_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(io::stderr()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (usize::from(w.ws_col), usize::from(w.ws_row)),
        _ => (80, 24),
    }
}

/// `left`, then `right` aligned to the right edge of `width` columns, `left` truncated to
/// make room; without a width, padded to 80 columns but never truncated.
fn fit(left: &str, right: &str, width: Option<usize>) -> String {
    let room = width.unwrap_or(usize::MAX);
    let need_right = if right.is_empty() { 0 } else { right.len() + 1 };
    let mut out = String::new();
    let mut used = 0;
    let limit = room.saturating_sub(need_right);
    for c in left.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > limit {
            break;
        }
        out.push(c);
        used += w;
    }
    if !right.is_empty() {
        let target = width
            .unwrap_or(80)
            .saturating_sub(right.len())
            .max(used + 1);
        out.push_str(&" ".repeat(target - used));
        out.push_str(right);
    }
    out
}

/// An output line made safe to print inside the view: what a `\r` overwrote is dropped,
/// tabs become spaces, escape sequences and other control characters go.
fn clean_line(line: &str) -> String {
    let line = line.rsplit('\r').next().unwrap_or(line);
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push_str("    "),
            '\x1b' => {
                // CSI: ESC [ parameters final-byte; other escapes: ESC and one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The redraw thread, while the view is live on a terminal.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// BuildKit-like progress on stderr: a header with the time and the steps done, one line
/// per step with its time, the running step's last output lines under it.
pub struct Tty {
    view: Arc<Mutex<View>>,
    ticker: Option<Ticker>,
    drain: Option<Drain>,
    term: bool,
}

fn lock(view: &Mutex<View>) -> MutexGuard<'_, View> {
    // A panic while drawing leaves a view that is still fine to draw.
    view.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tty {
    /// `term`: stderr is a terminal (redraw in place) or not (print a summary at the end).
    pub fn new(term: bool) -> Tty {
        Tty {
            view: Arc::new(Mutex::new(View {
                start: Instant::now(),
                rows: Vec::new(),
                notes: Vec::new(),
                export: None,
                finished: false,
                failed: false,
                drawn: 0,
                term,
            })),
            ticker: None,
            drain: None,
            term,
        }
    }

    fn start_ticker(&mut self) {
        if !self.term || self.ticker.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (view, stopped) = (self.view.clone(), stop.clone());
        let spawned = thread::Builder::new()
            .name("build-progress".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Acquire) {
                    lock(&view).draw(true);
                    thread::park_timeout(FRAME);
                }
            });
        match spawned {
            Ok(handle) => self.ticker = Some(Ticker { stop, handle }),
            Err(e) => log::debug!("no live progress view: {e}"),
        }
    }

    fn stop_ticker(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.stop.store(true, Ordering::Release);
            t.handle.thread().unpark();
            let _ = t.handle.join();
        }
    }

    /// The final view: every step with its time (and, on a terminal, over the live one).
    fn draw_final(&mut self) {
        self.stop_ticker();
        let mut v = lock(&self.view);
        if self.term {
            v.draw(false);
        } else {
            let lines = v.render(Instant::now(), None, false);
            let mut err = io::stderr().lock();
            for l in lines {
                let _ = writeln!(err, "{l}");
            }
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

/// The live view's end of a RUN's output: lines into the running step.
struct ViewSink {
    view: Arc<Mutex<View>>,
    lines: LineSplitter,
}

impl ViewSink {
    fn add(&mut self, bytes: &[u8], end: bool) {
        let mut got = Vec::new();
        self.lines
            .push(bytes, |l| got.push(clean_line(&line_text(l))));
        if end {
            self.lines.finish(|l| got.push(clean_line(&line_text(l))));
        }
        if got.is_empty() {
            return;
        }
        let mut v = lock(&self.view);
        if let Some(r) = v.current() {
            for l in got {
                r.push_output(l);
            }
        }
    }
}

impl Sink for ViewSink {
    fn chunk(&mut self, bytes: &[u8]) {
        self.add(bytes, false);
    }
    fn end(&mut self) {
        self.add(&[], true);
    }
}

impl Progress for Tty {
    fn step(&mut self, n: usize, total: usize, text: &str) {
        {
            let mut v = lock(&self.view);
            v.end_running(RowState::Done);
            v.rows.push(Row {
                n,
                total,
                text: text.to_owned(),
                state: RowState::Running,
                started: Instant::now(),
                elapsed: Duration::ZERO,
                details: Vec::new(),
                output: VecDeque::new(),
                output_bytes: 0,
                dropped: 0,
            });
        }
        self.start_ticker();
    }
    fn base(&mut self, _: Option<&Digest>) {
        if let Some(r) = lock(&self.view).current() {
            r.end(RowState::Done, None);
        }
    }
    fn cached(&mut self, _: &Digest) {
        if let Some(r) = lock(&self.view).current() {
            r.end(RowState::Cached, None);
        }
    }
    fn running(&mut self, _: &str) {}
    fn run_output(&mut self) -> Result<OwnedFd> {
        let (fd, drain) = drain(ViewSink {
            view: self.view.clone(),
            lines: LineSplitter::default(),
        })?;
        self.drain = Some(drain);
        Ok(fd)
    }
    fn run_done(&mut self) {
        if let Some(d) = self.drain.take() {
            d.wait();
        }
    }
    fn done(&mut self, _: &Digest, elapsed: Duration) {
        if let Some(r) = lock(&self.view).current() {
            r.end(RowState::Done, Some(elapsed));
        }
    }
    fn explain(&mut self, why: &str) {
        if let Some(r) = lock(&self.view).current() {
            r.details.push(format!("cache miss: {why}"));
        }
    }
    fn note(&mut self, text: &str) {
        let mut v = lock(&self.view);
        let line = clean_line(text);
        match v.current() {
            Some(r) => r.push_output(line),
            None => v.notes.push(line),
        }
    }
    fn finish(&mut self, id: &Digest, tags: &[Reference], unused: &[String]) {
        {
            let mut v = lock(&self.view);
            v.end_running(RowState::Done);
            let since = v
                .rows
                .last()
                .map_or(v.start, |r| r.started + r.elapsed)
                .elapsed();
            let mut lines = vec![format!("writing image {id} done")];
            lines.extend(tags.iter().map(|t| format!("naming to {t} done")));
            v.export = Some((since, lines));
            v.finished = true;
        }
        self.draw_final();
        if !unused.is_empty() {
            eprintln!(
                "WARNING: one or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
    fn failed(&mut self) {
        if let Some(d) = self.drain.take() {
            d.wait();
        }
        {
            let mut v = lock(&self.view);
            v.end_running(RowState::Error);
            v.finished = true;
            v.failed = true;
            if v.rows.is_empty() {
                // Nothing ran (the Dockerfile did not parse): the error says it all.
                drop(v);
                self.stop_ticker();
                let mut v = lock(&self.view);
                if self.term && v.drawn > 0 {
                    let up = format!("\x1b[{}A\x1b[J", v.drawn);
                    let _ = io::stderr().write_all(up.as_bytes());
                    v.drawn = 0;
                }
                return;
            }
        }
        self.draw_final();
        let v = lock(&self.view);
        if let Some(r) = v.rows.iter().find(|r| r.state == RowState::Error) {
            let mut text = format!("------\n > [{}/{}] {}:\n", r.n, r.total, r.text);
            if r.dropped > 0 {
                text.push_str(&format!(
                    "[{} earlier lines not shown: see `skiff buildx history logs`]\n",
                    r.dropped
                ));
            }
            for l in &r.output {
                text.push_str(l);
                text.push('\n');
            }
            text.push_str("------\n");
            let _ = io::stderr().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(n: usize, text: &str, state: RowState, ms: u64) -> Row {
        Row {
            n,
            total: 3,
            text: text.to_owned(),
            state,
            started: Instant::now(),
            elapsed: Duration::from_millis(ms),
            details: Vec::new(),
            output: VecDeque::new(),
            output_bytes: 0,
            dropped: 0,
        }
    }

    fn view(rows: Vec<Row>) -> View {
        View {
            start: Instant::now(),
            rows,
            notes: Vec::new(),
            export: None,
            finished: false,
            failed: false,
            drawn: 0,
            term: false,
        }
    }

    #[test]
    fn the_final_view_has_every_step_with_its_time_and_the_header() {
        let mut v = view(vec![
            row(1, "FROM busybox", RowState::Done, 0),
            row(2, "COPY . /src", RowState::Cached, 0),
            row(3, "RUN make", RowState::Done, 1234),
        ]);
        v.finished = true;
        v.export = Some((Duration::ZERO, vec!["writing image sha256:ab done".into()]));
        let lines = v.render(v.start, Some(60), false);
        assert!(
            lines[0].starts_with("[+] Building 0.0s (3/3) FINISHED"),
            "{lines:?}"
        );
        assert_eq!(lines[1].len(), 60);
        assert!(lines[1].starts_with(" => [1/3] FROM busybox "));
        assert!(lines[1].ends_with(" 0.0s"));
        assert!(lines[2].starts_with(" => CACHED [2/3] COPY . /src"));
        assert!(lines[3].starts_with(" => [3/3] RUN make"));
        assert!(lines[3].ends_with(" 1.2s"));
        assert!(lines[4].starts_with(" => exporting to image"));
        assert_eq!(lines[5], " => => writing image sha256:ab done");
    }

    #[test]
    fn the_running_step_shows_a_timer_and_its_last_output_lines() {
        let mut r = row(2, "RUN make", RowState::Running, 0);
        for i in 0..10 {
            r.push_output(format!("line {i}"));
        }
        let v = view(vec![row(1, "FROM busybox", RowState::Done, 0), r]);
        let live = v.render(Instant::now(), Some(80), true);
        assert!(live[0].contains("(1/3)"), "{live:?}");
        assert_eq!(live.len(), 3 + TAIL_LINES);
        assert_eq!(live[3], " => => # line 4");
        assert_eq!(live[8], " => => # line 9");
        // The final view has no output lines.
        assert_eq!(v.render(Instant::now(), Some(80), false).len(), 3);
    }

    #[test]
    fn lines_are_cut_to_the_width_and_cleaned() {
        let l = fit(
            &format!(" => [1/1] RUN {}", "x".repeat(100)),
            "0.1s",
            Some(40),
        );
        assert_eq!(l.chars().count(), 40);
        assert!(l.ends_with(" 0.1s"));
        assert_eq!(fit("abc", "", None), "abc");
        assert_eq!(clean_line("50%\r100%\t\x1b[31mok\x1b[0m"), "100%    ok");
    }

    #[test]
    fn output_kept_for_an_error_report_is_bounded() {
        let mut r = row(1, "RUN x", RowState::Running, 0);
        let big = "y".repeat(1 << 20);
        for _ in 0..6 {
            r.push_output(big.clone());
        }
        assert!(r.output_bytes <= KEEP_OUTPUT_BYTES);
        assert_eq!(r.dropped, 6 - r.output.len());
        for i in 0..KEEP_OUTPUT_LINES + 5 {
            r.push_output(i.to_string());
        }
        assert_eq!(r.output.len(), KEEP_OUTPUT_LINES);
        assert_eq!(r.output.back().map(String::as_str), Some("10004"));
    }
}
