//! Volumes: the store (`volume create/ls/inspect/rm/prune`), docker's mount flags, and the
//! planner that turns a container's flags and image VOLUMEs into its mounts.
//!
//! Where to start reading:
//! - [`plan`]: [`container_mounts`] (what `create`/`run` call), [`PlannedMount`] (stored with
//!   the container: runtime mount + inspect `Mounts` entry), [`remove_anonymous`] (`rm -v`)
//!   and [`release`] (`rm`).
//! - [`parse`]: `-v`, `--mount`, `--tmpfs` parsers with docker's messages.
//! - [`store`]: volumes on disk (`volumes/<name>/{_data,volume.json,refs/}`) and which
//!   containers use them.
//! - [`inroot`]: chroot-like path resolution and fd-based tree walking (shared with `cp`,
//!   `export`).

pub mod inroot;
pub mod list;
pub mod parse;
pub mod plan;
pub mod store;

pub use plan::{container_mounts, inspect_mounts, MountRequest, PlannedMount, VolumesFrom};
pub use store::{release, remove_anonymous, Volume};
