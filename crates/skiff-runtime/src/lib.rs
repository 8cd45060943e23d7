//! skiff-runtime: an OCI runtime bundle in, a running process out.
//!
//! This crate knows nothing of images or snapshots: it is handed a root filesystem and
//! what the container should be, and it writes the bundle and drives an OCI runtime.
//!
//! Where to start reading:
//! - [`spec`]: [`ContainerSpec`], the typed description of a container, and its translation
//!   into the OCI runtime spec (`config.json`) the way docker builds it; [`spec::exec_process`]
//!   for `exec`.
//! - [`defaults`] and [`seccomp`]: docker's defaults that translation starts from
//!   (capabilities and the `--cap-add`/`--cap-drop` arithmetic, mounts, devices and device
//!   rules, masked and read-only paths; the default seccomp profile and docker's profile
//!   format).
//! - [`bundle`]: writing `config.json` and `process.json` atomically and canonically.
//! - [`runtime`]: the narrow [`Runtime`] trait (create / start / state / kill / delete /
//!   pause / resume / exec); [`runtime::oci_cli`] runs `crun` or `runc` with skiff's own
//!   state directory; [`runtime::select`] picks the one that works on this host.
//! - [`host`] and [`cgroups`]: what the host is (cgroup v1, v2 or hybrid; limits; devices).
//! - [`sys`]: the thin layer of system calls (reaping, subreaper, rlimits, statfs).
//! - [`error`]: the crate's error and its [`ErrorKind`].

pub mod bundle;
pub mod cgroups;
pub mod defaults;
pub mod error;
pub mod host;
pub mod runtime;
pub mod seccomp;
pub mod spec;
pub mod sys;

pub use error::{Error, ErrorKind, ExecFailure};
pub use host::{Host, HostInfo};
pub use runtime::oci_cli::OciCli;
pub use runtime::{Io, ProcessIo, Runtime, State, Status, Stdio};
pub use spec::{ContainerSpec, ProcessSpec};
