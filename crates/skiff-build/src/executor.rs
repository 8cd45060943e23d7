//! The [`Executor`] trait: how a build runs a RUN step. The binary implements it with the
//! OCI runtime (a throwaway container on the step's root filesystem); tests can record.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

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
    /// `RUN --mount`s, their host side ready. A destination missing from the rootfs is
    /// created for the run and removed after it, so that it never reaches the layer.
    pub mounts: &'a [ExecMount],
}

/// A mount of one run, as the executor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecMount {
    /// A host directory or file bound at `target` (absolute in the container).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A fresh tmpfs (`size` in bytes, unlimited when `None`).
    Tmpfs { target: String, size: Option<u64> },
}

impl ExecMount {
    pub fn target(&self) -> &str {
        match self {
            ExecMount::Bind { target, .. } | ExecMount::Tmpfs { target, .. } => target,
        }
    }
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
