//! How `skiff build` shows its progress, and the record every build leaves behind.
//!
//! - [`Classic`]: docker's classic builder output (`--progress=auto`, the default, and `-q`);
//! - [`Plain`]: BuildKit's plain progress (`--progress=plain`);
//! - [`Tty`]: a BuildKit-like live view, one line per step, redrawn in place
//!   (`--progress=tty`); a summary without cursor movement when stderr is not a terminal;
//! - [`Recorder`]: wraps any of them and tees every event into the build's record and log
//!   (`ops::build::history`, read back by `skiff buildx history`).
//!
//! A RUN's output reaches a renderer through a file descriptor the runtime hands to the
//! container; the recorder and the live view put a pipe in between, drained by a thread, so
//! that output is seen (and logged) while the step runs.
//!
//! Files: `classic` (Classic, Plain), `record` (Recorder), `tty` (the live view), `pipe`
//! (the pipe, its draining thread, line splitting).

mod classic;
mod pipe;
mod record;
mod tty;

use std::io::{self, IsTerminal};
use std::path::Path;

pub use classic::{Classic, Plain};
pub use record::Recorder;
pub use tty::Tty;

use crate::ops::build::Progress;

/// The renderer `--progress` (and `-q`) asks for.
pub fn renderer(progress: &str, quiet: bool, context: &Path) -> Box<dyn Progress + Send> {
    if quiet {
        Box::new(Classic::quiet(context.to_owned()))
    } else if progress == "plain" {
        Box::new(Plain::default())
    } else if progress == "tty" {
        Box::new(Tty::new(io::stderr().is_terminal()))
    } else {
        // `auto` stays docker's classic builder output, terminal or not.
        Box::new(Classic::default())
    }
}
