//! The [`Executor`] trait: how a build runs a RUN step. The binary implements it with the
//! OCI runtime (a throwaway container on the step's root filesystem); tests can record.

use std::os::fd::OwnedFd;
use std::path::Path;

/// One command to run on a mounted root filesystem.
#[derive(Debug)]
pub struct RunRequest<'a> {
    /// A short name for the run (12 hex digits), which the output shows (`Running in ...`).
    pub name: &'a str,
    /// The mounted root filesystem; its changes become the step's layer.
    pub rootfs: &'a Path,
    pub args: &'a [String],
    /// `KEY=value`.
    pub env: &'a [String],
    /// `USER` as written; resolved against the rootfs by the executor.
    pub user: &'a str,
    pub workdir: &'a str,
    /// `default` / `none`: a private network namespace with only `lo`; `host`: the host's.
    pub network: &'a str,
    /// Where the command's stdout and stderr go.
    pub output: OwnedFd,
}

/// What running a command can fail with besides its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExecError(pub String);

/// Runs RUN steps.
pub trait Executor {
    /// Runs the command to its end and returns its exit code (128+n for signal n).
    fn run(&mut self, req: RunRequest<'_>) -> Result<i32, ExecError>;
}
