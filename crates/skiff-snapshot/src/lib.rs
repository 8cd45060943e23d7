//! skiff-snapshot: layered filesystems.
//!
//! Where to start reading:
//! - [`layer`]: applying a layer tar to a directory (whiteouts, confinement) and writing the
//!   changes of a directory back out as a layer tar; compression detection.
//! - `snapshotter`: the Snapshotter trait and its overlay and vfs drivers.

pub mod layer;
