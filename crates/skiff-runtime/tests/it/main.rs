//! Integration tests of skiff-runtime: golden `config.json` files for typed container specs,
//! spec behaviour, and the runtime conformance suite run against runc and crun.

// A test binary: a panic with its message is how a check reports failure, in helpers too.
#![allow(clippy::unwrap_used)]

mod golden;
mod spec;
mod suite;
mod support;
