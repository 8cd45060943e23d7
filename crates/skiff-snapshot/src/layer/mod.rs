//! Layer tars: apply and diff.
//!
//! Where to start reading:
//! - [`apply`]: [`apply_layer`] reads a (compressed) layer blob into a directory, hashing the
//!   tar for its diff_id on the way; `unpack` creates the entries, `path` keeps them inside
//!   the target (no `..` escapes, symlinks followed as in a chroot of the target), `attrs`
//!   sets owners, modes, xattrs and times.
//! - [`diff`]: [`write_layer`] turns an overlay upper directory, or two full trees, into a
//!   deterministic tar with whiteouts; `tarwrite` is its header writer.
//! - [`compression`]: gzip / zstd / bzip2 / xz detection, decompression and compression
//!   (parallel gzip in `pargz`).
//! - [`error`]: [`LayerError`], whose variants name the tar entry or file involved.
//!
//! Whiteouts follow the OCI image-spec (layer.md): `.wh.NAME` deletes `NAME` of the layers
//! below, `.wh..wh..opq` hides everything below in its directory.

pub mod apply;
mod attrs;
pub mod compression;
pub mod diff;
pub mod error;
mod padding;
mod pargz;
mod path;
pub mod splice;
mod tarwrite;
mod unpack;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use apply::{apply_layer, ApplyOptions, ApplyStats, WhiteoutMode};
pub use compression::{compressing_writer, decompressing_reader, detect, Compression, FinishWrite};
pub use diff::{write_layer, DiffOptions, DiffSource, DiffStats};
pub use error::LayerError;
pub use padding::TarEofPadding;

/// Prefix of a whiteout entry's name.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Xattrs never carried between a tree and a layer, in either direction:
/// - `trusted.overlay.*` is overlayfs's own bookkeeping (opaque, redirect, origin...). Written
///   from an untrusted layer into an upper directory, it could make overlayfs look up other
///   paths; read from an upper, it describes that mount, not the files.
/// - `security.selinux` is a label of the host's policy, not of the image.
pub(crate) fn is_skipped_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name == b"security.selinux"
}
