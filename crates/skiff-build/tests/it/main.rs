//! Integration tests of skiff-build: BuildKit's golden tables, then our own cases.

mod buildkit;
mod parser;
mod shell;
