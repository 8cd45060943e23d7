//! The error kinds every skiff crate maps its errors onto.
//!
//! The CLI turns a kind into an exit code and the Engine API into an HTTP status, so each
//! library error enum only has to say which kind it is.

/// What sort of failure an error is, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The named thing (image, blob, snapshot, tag) does not exist.
    NotFound,
    /// Something with that name already exists.
    AlreadyExists,
    /// The operation conflicts with the current state (an image in use, a lease held).
    Conflict,
    /// The caller gave bad input: a malformed reference, a corrupt archive, a bad flag value.
    InvalidArgument,
    /// A resource is temporarily unavailable (disk full, a lock held too long).
    Unavailable,
    /// A bug or an unexpected system failure.
    Internal,
}

/// Implemented by every library error so the binary can classify it without matching variants.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}

/// Classifies an I/O error: a missing file is NotFound, a full disk Unavailable, the rest Internal.
pub fn io_kind(err: &std::io::Error) -> ErrorKind {
    match err.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
            ErrorKind::InvalidArgument
        }
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    }
}
