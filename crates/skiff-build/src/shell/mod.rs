//! Docker's shell word expansion, as BuildKit's `frontend/dockerfile/shell/lex.go` does it.
//!
//! [`Lexer::process_word`] expands `$name`, `${name}`, `${name:-default}`, `${name-default}`,
//! `${name:+alt}`, `${name+alt}`, `${name:?msg}`, `${name?msg}`, `${name#pat}`, `${name%pat}`
//! (and the greedy `##`, `%%`), `${name/pat/rep}`, `${name//pat/rep}`, removes quotes and
//! escapes, and returns one string. [`Lexer::process_words`] does the same and then splits the
//! result into words on unquoted whitespace (whitespace that came out of a variable splits too,
//! whitespace inside quotes does not).
//!
//! Which characters are special: `$` always; `'` and `"` unless
//! [`Lexer::skip_process_quotes`]; the escape token (`\` or `` ` ``) outside single quotes.
//! Inside double quotes the escape token only escapes `"`, `$` and itself; elsewhere it is kept.
//! Positional (`$1`) and special (`$@ $* $# $? $- $$ $! $0`) parameters are never set.

mod lex;
mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Variables visible to an expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// No variable is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

/// A `KEY=VALUE` list such as an image's `Env`; a later entry overrides an earlier one, and an
/// entry without `=` sets the variable to the empty string.
#[derive(Debug, Clone, Default)]
pub struct EnvList(pub Vec<String>);

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            (key == name).then(|| value.to_string())
        })
    }
}

/// An expansion that went wrong, with the word being expanded, in BuildKit's words:
/// `failed to process "${x:?}": x: is not allowed to be unset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", crate::go_quote(.word))]
pub struct ShellError {
    /// The whole word that was being expanded.
    pub word: String,
    /// What went wrong, e.g. `syntax error: bad substitution`.
    pub message: String,
}

/// The outcome of [`Lexer::process_word`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub result: String,
    /// The expanded word split on unquoted whitespace.
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced and unset.
    pub unmatched: BTreeSet<String>,
}

/// Shell word expander. The defaults are the ones Dockerfile instructions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape token, `\` by default or `` ` `` after `# escape=``.
    pub escape: char,
    /// Keep quote characters in the output (quotes still group words).
    pub raw_quotes: bool,
    /// Keep escape tokens in the output.
    pub raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$x`, `${x:-d}`) instead of expanding.
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer with `escape` as escape token and every option off.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` against `env` into one string, recording which variables it used.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
        lex::expand(self, word, env)
    }

    /// Expands `word` against `env` and splits the result into words.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        lex::expand(self, word, env).map(|e| e.words)
    }
}
