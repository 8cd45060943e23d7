//! `skiff pull` / `skiff image pull`, and the per-layer status lines that pull and push
//! share: one line per event in a pipe, a live line per layer on a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anyhow::Result;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::human_size;
use super::GlobalOptions;
use crate::ops::registry::pull::{pull, PullEvent, PullOptions};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string", env = "DOCKER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Maximum number of layers downloaded at once
    #[arg(
        long = "max-concurrent-downloads",
        value_name = "int",
        default_value_t = 3
    )]
    pub max_concurrent_downloads: usize,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// Prints layer status lines as docker's CLI renders a progress stream.
pub struct LayerPrinter {
    quiet: bool,
    live: Option<Live>,
}

struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Set once every bar is finished: later lines go below them, printed plainly.
    done: std::sync::atomic::AtomicBool,
}

impl LayerPrinter {
    pub fn new(quiet: bool) -> LayerPrinter {
        let live = (!quiet && std::io::stdout().is_terminal()).then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
            done: std::sync::atomic::AtomicBool::new(false),
        });
        LayerPrinter { quiet, live }
    }

    /// A line that is not about one layer.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(l) if !l.done.load(std::sync::atomic::Ordering::Relaxed) => {
                let _ = l.multi.println(text);
            }
            _ => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    fn bar(&self, l: &Live, id: &str) -> Option<ProgressBar> {
        let mut bars = l.bars.lock().ok()?;
        Some(
            bars.entry(id.to_owned())
                .or_insert_with(|| {
                    let b = l.multi.add(ProgressBar::new(0));
                    if let Ok(style) = ProgressStyle::with_template("{prefix}: {msg}") {
                        b.set_style(style);
                    }
                    b.set_prefix(id.to_owned());
                    b
                })
                .clone(),
        )
    }

    /// `ID: STATUS`
    pub fn status(&self, id: &str, status: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(l) => {
                if let Some(b) = self.bar(l, id) {
                    b.set_message(status.to_owned());
                }
            }
            None => self.line(&format!("{id}: {status}")),
        }
    }

    /// Bytes moved for a layer: a bar on a terminal, nothing in a pipe (as docker).
    pub fn progress(&self, id: &str, verb: &str, current: u64, total: u64) {
        let Some(l) = &self.live else { return };
        if let Some(b) = self.bar(l, id) {
            b.set_message(format!(
                "{verb} {} {}/{}",
                docker_bar(current, total),
                human_size(current),
                human_size(total)
            ));
        }
    }

    /// Leaves the final state of every line on the screen.
    pub fn finish(&self) {
        if let Some(l) = &self.live {
            if l.done.swap(true, std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let mut any = false;
            if let Ok(bars) = l.bars.lock() {
                for b in bars.values() {
                    b.finish();
                    any = true;
                }
            }
            if any {
                // indicatif leaves the cursor at the end of the last bar.
                println!();
            }
        }
    }
}

/// docker's 50-column bar: `[=====>          ]`.
fn docker_bar(current: u64, total: u64) -> String {
    let width = 50usize;
    let filled = if total == 0 {
        0
    } else {
        ((current.min(total) as f64 / total as f64) * width as f64) as usize
    };
    let mut s = String::with_capacity(width + 2);
    s.push('[');
    for i in 0..width {
        s.push(if i + 1 < filled {
            '='
        } else if i + 1 == filled {
            '>'
        } else {
            ' '
        });
    }
    s.push(']');
    s
}

pub fn run(g: &GlobalOptions, a: PullArgs) -> Result<()> {
    let engine = g.engine()?;
    let has_tag_or_digest = a.name.contains('@')
        || a.name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
    let printer = LayerPrinter::new(a.quiet);
    if !a.all_tags && !has_tag_or_digest {
        printer.line("Using default tag: latest");
    }
    let opts = PullOptions {
        all_tags: a.all_tags,
        platform: a.platform.clone(),
        max_concurrent: a.max_concurrent_downloads,
        insecure: g.insecure_registries.clone(),
    };
    let on = |ev: PullEvent| match ev {
        PullEvent::PullingFrom { reference, path } => {
            printer.line(&format!("{reference}: Pulling from {path}"))
        }
        PullEvent::Layer { id, status } => printer.status(&id, status),
        PullEvent::Progress { id, current, total } => {
            printer.progress(&id, "Downloading", current, total)
        }
        PullEvent::Digest(d) => {
            printer.finish();
            printer.line(&format!("Digest: {d}"))
        }
        PullEvent::Status(s) => {
            printer.finish();
            printer.line(&format!("Status: {s}"))
        }
    };
    let result = pull(&engine, &a.name, &opts, &on);
    printer.finish();
    let pulled = result?;
    for r in pulled.references {
        println!("{r}");
    }
    Ok(())
}
