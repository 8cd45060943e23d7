//! Errors that operations raise on purpose, with the kind the CLI turns into an exit code.

use std::fmt;

pub use skiff_image::ErrorKind;

/// An error an operation reports to the user as is (its message is docker's wording).
#[derive(Debug)]
pub struct OpError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpError {}

impl OpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        OpError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
}

/// An error docker's CLI prints as is, without `Error response from daemon: `: checks the
/// client makes before talking to the daemon (a file that cannot be opened, a reference that
/// does not parse) and errors that `load` streams back as progress messages.
#[derive(Debug)]
pub struct PlainError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for PlainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlainError {}

impl PlainError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PlainError {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
}

/// The kind of the first error in an anyhow chain that knows its kind.
pub fn kind_of(err: &anyhow::Error) -> ErrorKind {
    use skiff_image::HasKind;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<OpError>() {
            return e.kind;
        }
        if let Some(e) = cause.downcast_ref::<PlainError>() {
            return e.kind;
        }
        if let Some(e) = cause.downcast_ref::<skiff_image::reference::ReferenceError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<skiff_image::content::ContentError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<skiff_image::store::StoreError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<skiff_snapshot::SnapshotError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<skiff_snapshot::layer::LayerError>() {
            return e.kind();
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return skiff_image::error::io_kind(e);
        }
    }
    ErrorKind::Internal
}

/// An error already printed to the user; the binary only turns it into an exit code.
#[derive(Debug)]
pub struct Reported(pub anyhow::Error);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Reported {}
