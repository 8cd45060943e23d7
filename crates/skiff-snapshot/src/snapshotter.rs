//! The Snapshotter contract, after containerd's.
//!
//! A snapshot is a directory tree identified by a key. It is *active* (writable, made by
//! `prepare`), a *view* (read-only, made by `view`) or *committed* (immutable, made by
//! `commit` from an active one, and usable as a parent). Mounts come back as data; mounting
//! them is the caller's business ([`crate::mount`]).
//!
//! Unpacking an image with layers L1, L2 (chain IDs C1, C2) goes:
//! ```text
//! prepare("extract-C1", None)     -> apply L1 into layer_target("extract-C1")
//! commit("C1", "extract-C1")
//! prepare("extract-C2", Some(C1)) -> apply L2 into layer_target("extract-C2")
//! commit("C2", "extract-C2")
//! prepare("<container id>", Some(C2)) -> mounts -> the container's rootfs
//! ```
//! and a container's changes become a layer through `diff_source(<container id>)`.

use std::path::PathBuf;

use skiff_image::error::{io_kind, ErrorKind, HasKind};

use crate::layer::{DiffSource, WhiteoutMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Active,
    View,
    Committed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "active" => Some(Kind::Active),
            "view" => Some(Kind::View),
            "committed" => Some(Kind::Committed),
            _ => None,
        }
    }
}

/// What the metadata says about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub key: String,
    pub parent: Option<String>,
    pub kind: Kind,
    /// The numeric directory name under the driver's directory.
    pub id: i64,
    pub created: i64,
}

/// A filesystem mount described as data (`mount -t kind -o options source target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// "overlay" or "bind".
    pub kind: String,
    pub source: PathBuf,
    pub options: Vec<String>,
}

/// Where a layer tar is applied for an active snapshot, and how its whiteouts must look there.
#[derive(Debug, Clone)]
pub struct LayerTarget {
    pub dir: PathBuf,
    pub whiteouts: WhiteoutMode,
}

/// The two trees whose difference is an active snapshot's changes.
#[derive(Debug, Clone)]
pub enum ChangeDirs {
    /// Overlay: the upper directory holds exactly the changes, whiteouts in overlay form.
    OverlayUpper(PathBuf),
    /// Full copies: compare the snapshot's tree against its parent's (None: no parent).
    Compare {
        lower: Option<PathBuf>,
        upper: PathBuf,
    },
}

impl ChangeDirs {
    /// Borrows these directories as the layer writer's input.
    pub fn as_diff_source(&self) -> DiffSource<'_> {
        match self {
            ChangeDirs::OverlayUpper(upper) => DiffSource::OverlayUpper { upper },
            ChangeDirs::Compare { lower, upper } => DiffSource::Compare {
                lower: lower.as_deref(),
                upper,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("snapshot {0} not found")]
    NotFound(String),
    #[error("snapshot {0} already exists")]
    AlreadyExists(String),
    #[error("snapshot {key} is {kind}, expected {expected}")]
    WrongKind {
        key: String,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("snapshot {key} cannot be removed: {children} snapshot(s) depend on it")]
    HasChildren { key: String, children: usize },
    #[error("unknown storage driver {0:?} (supported: overlay, vfs)")]
    UnknownDriver(String),
    #[error("storage driver overlay is not supported on this host: {0}")]
    OverlayUnsupported(String),
    #[error("snapshot metadata database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HasKind for SnapshotError {
    fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotFound(_) => ErrorKind::NotFound,
            SnapshotError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            SnapshotError::WrongKind { .. } | SnapshotError::HasChildren { .. } => {
                ErrorKind::Conflict
            }
            SnapshotError::UnknownDriver(_) | SnapshotError::OverlayUnsupported(_) => {
                ErrorKind::InvalidArgument
            }
            SnapshotError::Sqlite(_) => ErrorKind::Internal,
            SnapshotError::Io { source, .. } => io_kind(source),
        }
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The contract every storage driver implements.
pub trait Snapshotter: Send {
    /// The driver's name as `info` reports it ("overlay", "vfs").
    fn driver(&self) -> &'static str;
    /// Creates a writable snapshot on top of `parent` (a committed snapshot) and returns how
    /// to mount it.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// Creates a read-only view of a committed snapshot.
    fn view(&self, key: &str, parent: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// The mounts of an existing active or view snapshot.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// Turns the active snapshot `key` into the committed snapshot `name`.
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;
    /// Deletes a snapshot that no other snapshot uses as parent.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
    fn stat(&self, key: &str) -> Result<Option<Info>, SnapshotError>;
    /// Every snapshot, parents before children.
    fn walk(&self) -> Result<Vec<Info>, SnapshotError>;
    /// Bytes used by the snapshot's own directory (its changes for overlay, the whole tree for vfs).
    fn usage(&self, key: &str) -> Result<u64, SnapshotError>;
    /// Where to apply a layer into the active snapshot `key`.
    fn layer_target(&self, key: &str) -> Result<LayerTarget, SnapshotError>;
    /// Removes directories left without metadata by a crash; returns how many.
    fn cleanup(&self) -> Result<usize, SnapshotError>;
    /// What to diff to turn the active snapshot `key` into a layer.
    fn changes(&self, key: &str) -> Result<ChangeDirs, SnapshotError>;
}
