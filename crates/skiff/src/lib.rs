//! skiff: a daemonless, Docker-compatible container engine.
//!
//! Where to start reading:
//! - [`cli`]: docker's commands and flags (clap), one file per command family; each parses
//!   its arguments and calls one operation.
//! - [`ops`]: the operations themselves (import, save, load, rmi, ...), one file each, over an
//!   [`ops::engine::Engine`] that holds the opened state of a `--root`.
//! - The crates below: `skiff-image` (content store, formats, references, metadata) and
//!   `skiff-snapshot` (snapshotters, layer apply and diff).

pub mod cli;
pub mod monitor;
pub mod ops;
