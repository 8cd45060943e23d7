//! Dockerfile builds for skiff.
//!
//! Where to start reading:
//!
//! - [`parser`]: bytes -> [`parser::Dockerfile`], a list of [`parser::Instruction`]s with line
//!   spans, parser directives and heredocs, faithful to BuildKit's Dockerfile parser.
//!   [`parser::Dockerfile::dump`] prints BuildKit's s-expression dump used by the golden tests.
//!   - `parser/directives.rs`: `# syntax=`, `# escape=`, `# check=` and line continuations.
//!   - `parser/line.rs`: splitting one logical line into command, flags and arguments
//!     (JSON exec form, shell form, `KEY=VALUE` lists, HEALTHCHECK, ONBUILD).
//!   - `parser/heredoc.rs`: `<<EOF`, `<<-EOF` and quoted delimiters.
//! - [`shell`]: Docker's shell word expansion (`$v`, `${v:-d}`, quotes, escapes) through
//!   [`shell::Lexer`], used by later layers to expand instruction arguments.
//!
//! Later layers (typed instructions and stages, the plan with cache keys, execution) build on
//! these two.

pub mod parser;
pub mod shell;

mod quote;

pub use quote::go_quote;
