//! Containers: the store (record, state, index), and one file per operation on them.
//!
//! Where to start reading:
//! - [`model`] and [`store`]: the container record and state in docker's shape, and where
//!   they live (`containers.db` + `containers/<id>/`).
//! - [`create`]: image + flags -> record and writable snapshot; [`start`]: rootfs mount,
//!   OCI bundle, and the monitor (`crate::monitor`) that runs the container.
//! - [`stop`], [`kill`], [`wait`], [`rm`], [`list`], [`logs`], [`inspect`]: the lifecycle.
//! - [`reconcile`]: noticing a monitor that died and recording the container as exited.

pub mod attach;
pub mod create;
pub mod etc;
pub mod exec;
pub mod inspect;
pub mod kill;
pub mod list;
pub mod logs;
pub mod model;
pub mod names;
pub mod pause;
pub mod prune;
pub mod reconcile;
pub mod rename;
pub mod rm;
pub mod runtime;
pub mod spec;
pub mod start;
pub mod stats;
pub mod stop;
pub mod store;
pub mod timeparse;
pub mod top;
pub mod update;
pub mod users;
pub mod wait;

pub use store::{Container, ContainerStore, State, Status};
