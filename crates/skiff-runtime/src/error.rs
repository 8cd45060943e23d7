//! The one error type of this crate, and the kinds the binary classifies it by.
//!
//! This crate depends on no other skiff crate, so it carries its own [`ErrorKind`] with the
//! same variants as `skiff_image::ErrorKind`; the binary maps one onto the other.

use std::path::{Path, PathBuf};

/// What sort of failure an error is, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The container, runtime or file does not exist.
    NotFound,
    /// A container with that id already exists.
    AlreadyExists,
    /// The container is in the wrong state for the operation (not running, not paused...).
    Conflict,
    /// The caller gave bad input: an unknown capability, an impossible limit, a bad id.
    InvalidArgument,
    /// Something is missing or refused on this host (a runtime that cannot run here).
    Unavailable,
    /// A bug or an unexpected failure of the runtime or the system.
    Internal,
}

/// How a container's command could not be started, as docker reports it: the binary turns
/// these into exit codes 127 and 126.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFailure {
    /// The command does not exist (`executable file not found in $PATH`): exit 127.
    NotFound,
    /// The command exists but cannot be executed (permission denied, a directory): exit 126.
    NotExecutable,
}

impl ExecFailure {
    /// The exit code docker uses for this failure.
    pub fn exit_code(self) -> i32 {
        match self {
            ExecFailure::NotFound => 127,
            ExecFailure::NotExecutable => 126,
        }
    }
}

/// Everything that can go wrong while building a bundle or driving an OCI runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `--cap-add` / `--cap-drop` name that is unknown or cannot be granted here.
    #[error(transparent)]
    Capability(#[from] crate::defaults::CapabilityError),

    /// A container spec that cannot be turned into a valid OCI spec.
    #[error("invalid container configuration: {0}")]
    InvalidSpec(String),

    /// A container id the runtimes would refuse (or that could escape their state directory).
    #[error("invalid container id {0:?}: only [A-Za-z0-9_.+-] are allowed, up to 1024 characters")]
    InvalidId(String),

    /// A runtime name that cannot name a state directory.
    #[error("invalid runtime name {0:?}")]
    InvalidRuntimeName(String),

    /// The named or configured OCI runtime is not installed.
    #[error("OCI runtime {name:?} not found: {reason}")]
    RuntimeNotFound { name: String, reason: String },

    /// The runtime is installed but cannot run containers on this host.
    #[error("OCI runtime {name} cannot run containers on this host: {reason}")]
    RuntimeUnsupported { name: String, reason: String },

    /// The runtime knows no container with this id.
    #[error("No such container: {id}")]
    ContainerNotFound { id: String },

    /// The runtime already has a container with this id.
    #[error("container {id} already exists in {runtime}")]
    ContainerExists { id: String, runtime: String },

    /// The container is not in a state that allows the operation.
    #[error("{runtime} {command} {id}: {message}")]
    ContainerState {
        runtime: String,
        command: &'static str,
        id: String,
        message: String,
    },

    /// The container's command could not be started; `message` is the runtime's own words
    /// (`exec: "nope": executable file not found in $PATH`).
    #[error("{message}")]
    Exec {
        failure: ExecFailure,
        message: String,
    },

    /// The runtime failed for another reason; `message` is what it said on stderr or in its
    /// log, `status` its exit status.
    #[error("OCI runtime {command} failed: {message}")]
    RuntimeFailed {
        runtime: String,
        command: &'static str,
        message: String,
        status: Option<i32>,
    },

    /// The runtime printed something that is not the state document it should have.
    #[error("{runtime} state {id}: cannot parse its output: {source}")]
    BadState {
        runtime: String,
        id: String,
        source: serde_json::Error,
    },

    /// A JSON document (config.json, process.json) could not be encoded or decoded.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// A file or system call failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Capability(_)
            | Error::InvalidSpec(_)
            | Error::InvalidId(_)
            | Error::InvalidRuntimeName(_)
            | Error::Exec { .. } => ErrorKind::InvalidArgument,
            Error::RuntimeNotFound { .. } | Error::ContainerNotFound { .. } => ErrorKind::NotFound,
            Error::RuntimeUnsupported { .. } => ErrorKind::Unavailable,
            Error::ContainerExists { .. } => ErrorKind::AlreadyExists,
            Error::ContainerState { .. } => ErrorKind::Conflict,
            Error::RuntimeFailed { .. } | Error::BadState { .. } | Error::Json { .. } => {
                ErrorKind::Internal
            }
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
        }
    }

    /// For a failure to start the container's command, whether it was missing (127) or not
    /// executable (126).
    pub fn exec_failure(&self) -> Option<ExecFailure> {
        match self {
            Error::Exec { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}
