//! Layer tars: apply and diff.
