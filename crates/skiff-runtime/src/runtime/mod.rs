//! The [`Runtime`] trait: what skiff asks of an OCI runtime, and nothing more.
//!
//! The operations are the OCI runtime lifecycle (create, start, state, kill, delete) plus
//! pause/resume and exec. Everything crosses the trait as plain data (paths, file
//! descriptors, pids), so an in-process backend could implement it later without the callers
//! changing. Today's backend is [`oci_cli::OciCli`], which runs `crun` or `runc`;
//! [`select`] picks one for this host.
//!
//! Waiting for a container's processes is not the runtime's job: [`Runtime::create`] and
//! [`Runtime::exec`] return the pid, and the caller, a child subreaper
//! ([`crate::sys::set_child_subreaper`]), waits for it with [`crate::sys::wait_pid`].

pub mod oci_cli;
pub mod select;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One of a process's standard streams.
#[derive(Debug, Default)]
pub enum Io {
    /// `/dev/null`.
    #[default]
    Null,
    /// The caller's own stream.
    Inherit,
    /// This file descriptor (a pipe end, a log file); it is passed to the container.
    Fd(OwnedFd),
}

/// The standard streams of a container's init or of an exec'd process. Ignored when the
/// process has a terminal: its streams are then the pty, handed over the console socket.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Io,
    pub stdout: Io,
    pub stderr: Io,
}

impl Stdio {
    /// All three streams on /dev/null.
    pub fn null() -> Stdio {
        Stdio::default()
    }

    /// All three streams shared with the caller.
    pub fn inherit() -> Stdio {
        Stdio {
            stdin: Io::Inherit,
            stdout: Io::Inherit,
            stderr: Io::Inherit,
        }
    }
}

/// How a new process (a container's init, an exec) is wired up.
#[derive(Debug, Default)]
pub struct ProcessIo {
    pub stdio: Stdio,
    /// A unix socket on which the runtime sends the pty master (when `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Where the runtime also writes the new process's pid.
    pub pid_file: Option<PathBuf>,
}

/// A container's status as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The runtime's view of a container (the OCI `state` document, plus runc's `paused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// The init process, while there is one.
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    /// When the runtime created the container (RFC 3339), if it says.
    pub created: Option<String>,
}

/// An OCI runtime.
pub trait Runtime: Send + Sync {
    /// The name skiff knows the runtime by (`crun`, `runc`, or a configured name).
    fn name(&self) -> &str;

    /// Creates container `id` from the bundle at `bundle` (its `config.json` and rootfs):
    /// namespaces, mounts, cgroups are set up and the init process waits, not yet running
    /// the user's command. Returns the init's pid.
    fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<i32, Error>;

    /// Runs the user's command in a created container.
    fn start(&self, id: &str) -> Result<(), Error>;

    /// The container's status and init pid.
    fn state(&self, id: &str) -> Result<State, Error>;

    /// Sends `signal` to the init process, or with `all` to every process of the container.
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error>;

    /// Removes the container's runtime state and cgroup; `force` kills it first if it runs.
    fn delete(&self, id: &str, force: bool) -> Result<(), Error>;

    /// Freezes every process of the container (cgroup freezer).
    fn pause(&self, id: &str) -> Result<(), Error>;

    /// Thaws a paused container.
    fn resume(&self, id: &str) -> Result<(), Error>;

    /// Changes the cgroup limits of a running container to `resources`, the JSON of an OCI
    /// `linux.resources` object (`docker update`).
    fn update(&self, id: &str, resources: &Path) -> Result<(), Error>;

    /// Starts another process in the running container, described by the `process.json` at
    /// `process` (see [`crate::spec::exec_process`] and [`crate::bundle::write_process`]).
    /// Returns its pid; it is not waited for.
    fn exec(&self, id: &str, process: &Path, io: ProcessIo) -> Result<i32, Error>;
}

/// Checks that `id` is a container id every runtime accepts and that cannot leave a state
/// directory: 1 to 1024 characters of `[A-Za-z0-9_.+-]`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_state_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "a.b-c_d+e", "0123456789abcdef"] {
            validate_id(good).unwrap();
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn status_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Status::Paused).unwrap(),
            "\"paused\""
        );
        assert_eq!(Status::Running.to_string(), "running");
    }
}
