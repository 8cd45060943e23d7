//! skiff-image: everything about images that does not need a filesystem mount.
//!
//! Where to start reading:
//! - [`digest`]: `sha256:` digests and hashing adapters (SHA-NI where the CPU has it).
//! - [`content`]: the content store, `blobs/sha256/<hex>` written only through `ingest/`.
//! - [`reference`]: docker's reference grammar and normalisation (`busybox` ->
//!   `docker.io/library/busybox:latest`).
//! - [`spec`]: manifests, indexes, image configs (OCI and Docker schema2), media types,
//!   diff IDs and chain IDs.
//! - [`store`]: image and tag metadata in SQLite, leases, and what garbage collection may delete.
//! - [`error`]: the error kinds that every crate maps its errors onto.

pub mod content;
pub mod digest;
pub mod error;
pub mod reference;
pub mod spec;
pub mod store;

pub use digest::Digest;
pub use error::{ErrorKind, HasKind};
