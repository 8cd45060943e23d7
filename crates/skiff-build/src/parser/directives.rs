//! Parser directives (`# syntax=`, `# escape=`, `# check=`) and line continuations.

use super::error::ParseErrorKind;

/// A parser directive found at the top of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Directive state while parsing: directives are only recognised in the leading run of
/// `# key=value` comment lines, each at most once; the first other line ends that run.
#[derive(Debug)]
pub(super) struct Directives {
    pub(super) escape: char,
    pub(super) found: Vec<Directive>,
    done: bool,
    line: usize,
}

impl Directives {
    pub(super) fn new() -> Self {
        Directives {
            escape: '\\',
            found: Vec::new(),
            done: false,
            line: 0,
        }
    }

    /// Looks at one physical line (without its newline); returns whether it was a directive.
    pub(super) fn check_line(&mut self, line: &str) -> Result<bool, ParseErrorKind> {
        self.line += 1;
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = line.strip_prefix('#').and_then(split_directive) else {
            self.done = true;
            return Ok(false);
        };
        let name = key.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(false);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseErrorKind::DuplicateDirective(name));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => return Err(ParseErrorKind::InvalidEscape(other.to_string())),
            };
        }
        self.found.push(Directive {
            name,
            value: value.to_string(),
            line: self.line,
        });
        Ok(true)
    }

    /// Strips a trailing continuation (the escape token, then only blanks) from `line`.
    /// Returns the line and whether the logical line ends here. An escape token preceded by
    /// another escape token is an escaped escape, not a continuation.
    pub(super) fn trim_continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        if let Some(before) = trimmed.strip_suffix(self.escape) {
            if !before.ends_with(self.escape) {
                return (before, false);
            }
        }
        (line, true)
    }
}

/// Go's `\s` in RE2: ASCII blanks without `\v`.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}')
}

/// Splits ` key = value ` (after the `#`) the way BuildKit's directive regexp
/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` does.
fn split_directive(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = value.trim_matches(is_re_space);
    (!value.is_empty()).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_syntax() {
        assert_eq!(split_directive(" escape = `"), Some(("escape", "`")));
        assert_eq!(
            split_directive("syntax=docker/dockerfile:1 "),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(split_directive(" escape="), None);
        assert_eq!(split_directive(" 1x=y"), None);
        assert_eq!(split_directive(" hello world"), None);
    }

    #[test]
    fn continuation() {
        let d = Directives::new();
        assert_eq!(d.trim_continuation("RUN a \\  "), ("RUN a ", false));
        assert_eq!(d.trim_continuation("\\"), ("", false));
        assert_eq!(d.trim_continuation("RUN a\\\\"), ("RUN a\\\\", true));
        assert_eq!(d.trim_continuation("RUN a"), ("RUN a", true));
    }
}
