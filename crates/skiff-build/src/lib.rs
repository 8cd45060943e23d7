//! Dockerfile builds for skiff.
//!
//! Where to start reading:
//!
//! - [`parser`]: bytes -> [`parser::Dockerfile`], a list of [`parser::Instruction`]s with line
//!   spans, parser directives and heredocs, faithful to BuildKit's Dockerfile parser.
//!   [`parser::Dockerfile::dump`] prints BuildKit's s-expression dump used by the golden tests.
//! - [`shell`]: Docker's shell word expansion (`$v`, `${v:-d}`, quotes, escapes) through
//!   [`shell::Lexer`].
//! - [`instructions`]: flags checked per instruction, the file split into stages with the
//!   meta ARGs before the first FROM ([`instructions::split_stages`]).
//! - [`dispatch`]: [`dispatch::StageState`] applies one instruction: metadata changes the
//!   image config and yields docker's `created_by` line; RUN, COPY/ADD and WORKDIR come back
//!   as an [`dispatch::Effect`] for the caller to execute.
//! - [`context`]: COPY/ADD sources in the context or another stage, their content hash (mode
//!   and owner, not mtime) and the copy itself; [`ignore`]: `.dockerignore` patterns;
//!   [`user`]: USER and `--chown` against the image's passwd and group files.
//! - [`cache`]: the versioned cache key ([`cache::KeyInput`]) and why two keys differ.
//! - [`executor`]: the [`executor::Executor`] trait the binary implements with the runtime.
//! - [`mounts`]: `RUN --mount=...` parsed and validated as BuildKit does.
//! - [`duration`]: Go durations (HEALTHCHECK flags and history).
//!
//! The build loop itself (snapshots, layers, the cache store, output) is in the binary's
//! `ops/build`, which owns the engine's state.

pub mod cache;
pub mod context;
pub mod dispatch;
pub mod duration;
pub mod executor;
mod filecopy;
pub mod ignore;
pub mod instructions;
pub mod mounts;
pub mod parser;
pub mod shell;
pub mod user;

mod quote;

pub use quote::{go_quote, go_quote_rune};
