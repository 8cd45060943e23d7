//! Dockerfile parser: bytes -> [`Dockerfile`], following BuildKit's
//! `frontend/dockerfile/parser`.
//!
//! The file is read line by line. Leading `# key=value` comments are parser directives
//! (`directives.rs`). A line ending in the escape token continues on the next one; comment lines
//! and blank lines inside a continuation are skipped (blank ones with a [`Warning`]). Each
//! logical line becomes an [`Instruction`] (`line.rs`); `RUN`, `COPY` and `ADD` in shell form
//! may then open heredocs whose bodies are the following lines (`heredoc.rs`).
//!
//! ```
//! let df = skiff_build::parser::parse(b"FROM busybox\nRUN echo \\\n  hi\n").unwrap();
//! assert_eq!(df.instructions[1].args, ["echo   hi"]);
//! assert_eq!((df.instructions[1].start_line, df.instructions[1].end_line), (2, 3));
//! assert_eq!(df.dump(), "(from \"busybox\")\n(run \"echo   hi\")");
//! ```

mod directives;
mod dump;
mod error;
mod heredoc;
mod line;

pub use directives::Directive;
pub use error::{ParseError, ParseErrorKind};
pub use heredoc::{chomp_heredoc_content, parse_heredoc};

/// bufio.Scanner's limit, which BuildKit inherits: a physical line must be shorter.
const MAX_LINE: usize = 64 * 1024;

/// A Dockerfile instruction keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    /// Every keyword, in alphabetical order.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::StopSignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword in lower case, e.g. `stopsignal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "add",
            Keyword::Arg => "arg",
            Keyword::Cmd => "cmd",
            Keyword::Copy => "copy",
            Keyword::Entrypoint => "entrypoint",
            Keyword::Env => "env",
            Keyword::Expose => "expose",
            Keyword::From => "from",
            Keyword::Healthcheck => "healthcheck",
            Keyword::Label => "label",
            Keyword::Maintainer => "maintainer",
            Keyword::Onbuild => "onbuild",
            Keyword::Run => "run",
            Keyword::Shell => "shell",
            Keyword::StopSignal => "stopsignal",
            Keyword::User => "user",
            Keyword::Volume => "volume",
            Keyword::Workdir => "workdir",
        }
    }

    /// Case-insensitive lookup; `None` for an unknown instruction.
    pub fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    fn can_have_heredoc(self) -> bool {
        matches!(self, Keyword::Add | Keyword::Copy | Keyword::Run)
    }
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// Whether `$variables` in the body expand: false when the delimiter is (partly) quoted.
    pub expand: bool,
    /// `<<-`: leading tabs are to be removed (see [`chomp_heredoc_content`]).
    pub chomp: bool,
    /// The body, every line with its line ending, without the delimiter line.
    pub content: String,
}

/// One instruction of the parse tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Which instruction.
    pub keyword: Keyword,
    /// The keyword as written (`run`, `RUN`, `Run`).
    pub command: String,
    /// Leading `--flag[=value]` words, quotes and escapes removed (`--from=build`).
    pub flags: Vec<String>,
    /// The arguments, shaped per instruction as BuildKit shapes them:
    /// - exec form (`json` true): the strings of the JSON array;
    /// - shell form of RUN, CMD, ENTRYPOINT, SHELL: one string, the rest of the line;
    /// - COPY, ADD, VOLUME, FROM, EXPOSE in shell form: blank-separated words;
    /// - ARG: words, quotes kept; MAINTAINER, USER, WORKDIR, STOPSIGNAL: the rest of the line;
    /// - ENV, LABEL: triples key, value, separator (`""` for `ENV k v`, `"="` for `ENV k=v`),
    ///   the value still quoted and escaped;
    /// - HEALTHCHECK: the type (`CMD`, `NONE`) and then the command as for CMD;
    /// - ONBUILD: empty, see `onbuild`.
    pub args: Vec<String>,
    /// Whether the arguments were a JSON array (exec form).
    pub json: bool,
    /// The instruction that ONBUILD wraps.
    pub onbuild: Option<Box<Instruction>>,
    /// Heredocs opened on this line, in order (for ONBUILD, those of the wrapped instruction).
    pub heredocs: Vec<Heredoc>,
    /// The logical line, continuations joined.
    pub original: String,
    /// The comment lines right above the instruction, `#` and blanks removed.
    pub comments: Vec<String>,
    /// First line, 1-based.
    pub start_line: usize,
    /// Last line, 1-based, including continuation and heredoc lines.
    pub end_line: usize,
}

/// Something suspicious that is still accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What, in BuildKit's words.
    pub message: String,
    /// Where (1-based line).
    pub line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The instructions, in order.
    pub instructions: Vec<Instruction>,
    /// The parser directives at the top of the file.
    pub directives: Vec<Directive>,
    /// The escape token in effect, `\` or `` ` ``.
    pub escape: char,
    /// Accepted oddities, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The value of a parser directive (`syntax`, `escape`, `check`), if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Physical lines with their line endings, the byte-order mark removed, each checked
/// against the length limit.
struct Lines<'a> {
    inner: std::str::SplitInclusive<'a, char>,
    /// Lines handed out so far.
    count: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(line) = self.inner.next() else {
            return Ok(None);
        };
        self.count += 1;
        if line.len() > MAX_LINE {
            return Err(ParseErrorKind::LineTooLong.at(self.count, self.count));
        }
        Ok(Some(line))
    }
}

/// Parses a Dockerfile. Invalid UTF-8 is replaced by U+FFFD.
pub fn parse(src: &[u8]) -> Result<Dockerfile, ParseError> {
    let text = String::from_utf8_lossy(src);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Lines {
        inner: text.split_inclusive('\n'),
        count: 0,
    };
    let mut d = directives::Directives::new();
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = lines.next()? {
        let start = lines.count;
        let first = trim_newline(raw).trim_start();
        if is_comment(first) {
            let comment = first[1..].trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let is_directive = d.check_line(first).map_err(|e| e.at(start, start))?;
        if is_directive {
            comments.pop();
        }
        let first = if is_comment(first) { "" } else { first };
        let (first, mut end_of_line) = d.trim_continuation(first);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut logical = first.to_string();
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = lines.next()? else { break };
            let next = trim_newline(raw);
            d.check_line(next)
                .map_err(|e| e.at(lines.count, lines.count))?;
            if is_comment(next) {
                continue;
            }
            if next.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (next, eol) = d.trim_continuation(next);
            end_of_line = eol;
            logical.push_str(next);
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {logical}"),
                line: lines.count,
            });
        }

        let mut instruction = line::parse_line(&logical, d.escape, std::mem::take(&mut comments))
            .map_err(|e| e.at(start, lines.count))?;
        let target = instruction.onbuild.as_deref().unwrap_or(&instruction);
        if target.keyword.can_have_heredoc() && !target.json && logical.contains("<<") {
            let docs = heredoc::heredocs_in_line(&logical)
                .map_err(|e| ParseErrorKind::from(e).at(start, lines.count))?;
            for mut doc in docs {
                read_heredoc_body(&mut lines, &mut doc).map_err(|e| e.at(start, lines.count))?;
                instruction.heredocs.push(doc);
            }
        }
        instruction.start_line = start;
        instruction.end_line = lines.count;
        instructions.push(instruction);
    }

    if instructions.is_empty() {
        return Err(ParseErrorKind::Empty.at(lines.count, lines.count));
    }
    Ok(Dockerfile {
        instructions,
        directives: d.found,
        escape: d.escape,
        warnings,
    })
}

/// Reads lines into `doc.content` up to its delimiter line.
fn read_heredoc_body(lines: &mut Lines<'_>, doc: &mut Heredoc) -> Result<(), ParseErrorKind> {
    loop {
        let line = match lines.next() {
            Ok(Some(line)) => line,
            Ok(None) => return Err(ParseErrorKind::UnterminatedHeredoc),
            Err(e) => return Err(e.kind),
        };
        let mut candidate = trim_newline(line);
        if doc.chomp {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == doc.name {
            return Ok(());
        }
        doc.content.push_str(line);
    }
}
