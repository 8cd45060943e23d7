//! Parse errors, worded like BuildKit's and located like docker prints them.

use crate::shell::ShellError;

/// A Dockerfile that cannot be parsed, with the lines of the offending instruction.
///
/// Displays as docker does: `dockerfile parse error on line 2: unknown instruction: RUNCMD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {start_line}: {kind}")]
pub struct ParseError {
    /// First line (1-based) of the instruction or directive at fault.
    pub start_line: usize,
    /// Last line (1-based) of it; equal to `start_line` for a one-line instruction.
    pub end_line: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// What went wrong while parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The file has no instruction, only blank lines, comments and directives.
    #[error("file with no instructions")]
    Empty,
    /// The instruction keyword is not one Docker knows.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// `# escape=` with something else than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// The same parser directive appears twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// A JSON array argument holds something else than strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// Old-style `ENV key value` / `LABEL key value` without a value.
    #[error("{0} must have two arguments")]
    MissingValue(&'static str),
    /// A `KEY=VALUE` list with a word that has no `=`.
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", crate::go_quote(.0))]
    MissingEquals(String),
    /// A heredoc whose terminator never came.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    /// A heredoc word that cannot be lexed.
    #[error(transparent)]
    Heredoc(#[from] ShellError),
    /// A physical line longer than docker accepts.
    #[error("dockerfile line greater than max allowed size of {}", super::MAX_LINE - 1)]
    LineTooLong,
}

impl ParseErrorKind {
    pub(super) fn at(self, start_line: usize, end_line: usize) -> ParseError {
        ParseError {
            start_line,
            end_line: end_line.max(start_line),
            kind: self,
        }
    }
}
