//! Errors of layer apply and diff. Each variant names the tar entry or the file involved.

use std::io;
use std::path::PathBuf;

use skiff_image::error::{io_kind, ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A `..` in the entry's path (or hardlink target) climbs above the root.
    #[error("layer entry {entry:?}: path escapes the root")]
    PathEscapes { entry: String },
    /// Resolving the entry's parent directories (symlinks followed inside the root) took more
    /// than 40 symlinks: a loop.
    #[error("layer entry {entry:?}: parent {parent:?}: too many levels of symbolic links")]
    SymlinkLoop { entry: String, parent: String },
    /// A parent directory of the entry is a symlink whose target (resolved inside the root)
    /// does not exist: directories are not created through it, as docker does not.
    #[error(
        "layer entry {entry:?}: parent {parent:?} is a dangling symlink (resolved inside the root)"
    )]
    DanglingSymlink { entry: String, parent: String },
    /// A component on the way to the entry exists and is not a directory.
    #[error("layer entry {entry:?}: parent {parent:?} is not a directory")]
    NotADirectory { entry: String, parent: String },
    /// A hardlink whose target escapes the root, does not exist, or is a directory.
    #[error("layer entry {entry:?}: hardlink target {target:?}: {reason}")]
    BadHardlink {
        entry: String,
        target: String,
        reason: String,
    },
    /// An entry this implementation refuses: unknown type, bad whiteout name, the root itself.
    #[error("layer entry {entry:?}: {reason}")]
    InvalidEntry { entry: String, reason: String },
    /// A system call on behalf of an entry failed.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    /// The (decompressed) stream is not a valid tar, or reading it failed.
    #[error("reading layer tar{}: {source}", after_entry(.after))]
    Read {
        after: Option<String>,
        source: io::Error,
    },
    /// Writing the tar produced by a diff failed.
    #[error("writing layer tar: {source}")]
    Write { source: io::Error },
    /// A file of the tree being applied to or diffed could not be read or changed.
    #[error("{}: {op}: {source}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// A file in the tree being diffed cannot be represented in a layer.
    #[error("{}: {reason}", .path.display())]
    Unrepresentable { path: PathBuf, reason: String },
}

fn after_entry(after: &Option<String>) -> String {
    match after {
        Some(entry) => format!(" after entry {entry:?}"),
        None => String::new(),
    }
}

impl HasKind for LayerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayerError::PathEscapes { .. }
            | LayerError::SymlinkLoop { .. }
            | LayerError::DanglingSymlink { .. }
            | LayerError::NotADirectory { .. }
            | LayerError::BadHardlink { .. }
            | LayerError::InvalidEntry { .. }
            | LayerError::Unrepresentable { .. } => ErrorKind::InvalidArgument,
            LayerError::Read { source, .. } => match source.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ErrorKind::InvalidArgument
                }
                _ => io_kind(source),
            },
            LayerError::Entry { source, .. }
            | LayerError::Write { source }
            | LayerError::Io { source, .. } => io_kind(source),
        }
    }
}

/// Shorthand for an [`LayerError::Entry`] error constructor: `.map_err(entry_err(name, "mknod"))`.
pub(crate) fn entry_err<'a>(
    entry: &'a str,
    op: &'static str,
) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |source| LayerError::Entry {
        entry: entry.to_owned(),
        op,
        source,
    }
}

/// Shorthand for an [`LayerError::Io`] error constructor.
pub(crate) fn io_err<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |source| LayerError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_entry() {
        let e = LayerError::PathEscapes {
            entry: "../../etc/x".into(),
        };
        assert_eq!(
            e.to_string(),
            "layer entry \"../../etc/x\": path escapes the root"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = LayerError::Read {
            after: Some("etc/passwd".into()),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"),
        };
        assert_eq!(
            e.to_string(),
            "reading layer tar after entry \"etc/passwd\": truncated"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
