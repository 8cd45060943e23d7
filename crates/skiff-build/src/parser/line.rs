//! One logical line -> [`Instruction`]: the command, its `--flags`, and its arguments split
//! the way each instruction family wants them.

use super::error::ParseErrorKind;
use super::{Instruction, Keyword};

/// The blanks BuildKit splits commands and plain lists on (`[\t\v\f\r ]`).
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Arguments of one instruction as the dispatch functions produce them.
#[derive(Default)]
struct Args {
    args: Vec<String>,
    json: bool,
    sub: Option<Box<Instruction>>,
}

impl Args {
    fn plain(args: Vec<String>) -> Self {
        Args {
            args,
            ..Args::default()
        }
    }
}

/// Parses a logical line (continuations already joined) into an instruction whose line span
/// is left for the caller to fill in.
pub(super) fn parse_line(
    line: &str,
    escape: char,
    comments: Vec<String>,
) -> Result<Instruction, ParseErrorKind> {
    let trimmed = line.trim();
    let (command, rest) = match trimmed.find(is_blank) {
        Some(i) => (
            &trimmed[..i],
            Some(trimmed[i..].trim_start_matches(is_blank)),
        ),
        None => (trimmed, None),
    };
    let (flags, rest) = match rest {
        Some(rest) => {
            let (rest, flags) = extract_flags(rest, escape);
            (flags, rest.trim())
        }
        None => (Vec::new(), ""),
    };
    let keyword = Keyword::parse(command)
        .ok_or_else(|| ParseErrorKind::UnknownInstruction(command.to_string()))?;
    let Args { args, json, sub } = match keyword {
        Keyword::Add | Keyword::Copy | Keyword::Volume => maybe_json_to_list(rest)?,
        Keyword::Arg => Args::plain(words(rest, escape)),
        Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell => maybe_json(rest)?,
        Keyword::Env => Args::plain(name_val(rest, "ENV", escape)?),
        Keyword::Label => Args::plain(name_val(rest, "LABEL", escape)?),
        Keyword::Expose | Keyword::From => Args::plain(blank_delimited(rest)),
        Keyword::Healthcheck => health(rest)?,
        Keyword::Maintainer | Keyword::StopSignal | Keyword::User | Keyword::Workdir => {
            Args::plain(if rest.is_empty() {
                vec![]
            } else {
                vec![rest.to_string()]
            })
        }
        Keyword::Onbuild => Args {
            sub: if rest.is_empty() {
                None
            } else {
                Some(Box::new(parse_line(rest, escape, Vec::new())?))
            },
            ..Args::default()
        },
    };
    Ok(Instruction {
        keyword,
        command: command.to_string(),
        flags,
        args,
        json,
        onbuild: sub,
        heredocs: Vec::new(),
        original: line.to_string(),
        comments,
        start_line: 0,
        end_line: 0,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Takes the leading `--flag` words off `line`; a lone `--` ends the flags. Quotes group and
/// are removed, the escape token escapes the next character.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let cs: Vec<(usize, char)> = line.char_indices().collect();
    let n = cs.len();
    let rest_from = |pos: usize| &line[cs.get(pos).map_or(line.len(), |c| c.0)..];
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        if pos == n {
            if phase != Phase::Spaces && buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push(std::mem::take(&mut buf));
            }
            break;
        }
        let mut ch = cs[pos].1;
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || cs.get(pos + 1).map(|c| c.1) != Some('-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                let word = std::mem::take(&mut buf);
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(word);
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape {
            if pos + 1 == n {
                if phase == Phase::Quote {
                    phase = Phase::Word;
                }
                pos += 1;
                continue;
            }
            pos += 1;
            ch = cs[pos].1;
        }
        buf.push(ch);
        pos += 1;
    }
    ("", words)
}

/// Splits on whitespace keeping quotes and escapes in the words (they are removed later by
/// word expansion); a quoted empty string is a word.
pub(super) fn words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        if pos == n {
            if phase != Phase::Spaces && (blank_ok || !buf.is_empty()) {
                words.push(std::mem::take(&mut buf));
            }
            break;
        }
        let mut ch = chars[pos];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                buf.push(ch);
                pos += 1;
                ch = chars[pos];
            }
        } else {
            if ch == quote {
                phase = Phase::Word;
            }
            if ch == escape && quote != '\'' {
                if pos + 1 == n {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                buf.push(ch);
                pos += 1;
                ch = chars[pos];
            }
        }
        buf.push(ch);
        pos += 1;
    }
    words
}

/// `ENV`/`LABEL`: either the old `KEY value with spaces` or `k=v k2="v 2"`. Each pair becomes
/// three arguments, key, value and separator (`""` for the old form, `"="` for the new), as in
/// BuildKit's tree.
fn name_val(rest: &str, key: &'static str, escape: char) -> Result<Vec<String>, ParseErrorKind> {
    let words = words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(i) = rest.find(is_blank) else {
            return Err(ParseErrorKind::MissingValue(key));
        };
        let value = rest[i..].trim_start_matches(is_blank);
        return Ok(vec![
            rest[..i].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word));
        };
        args.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(args)
}

/// Splits on runs of blanks (`FROM`, `EXPOSE`, shell-form `COPY`/`ADD`/`VOLUME`).
fn blank_delimited(rest: &str) -> Vec<String> {
    rest.split(is_blank)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A JSON array of strings, `None` when `rest` is not valid JSON (then it is shell form), an
/// error when it is valid JSON with something else than strings in it.
fn json_array(rest: &str) -> Result<Option<Vec<String>>, ParseErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ParseErrorKind::NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Exec form when `rest` is a JSON string array, else the whole text as one shell-form word.
fn maybe_json(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    Ok(match json_array(rest)? {
        Some(args) => Args {
            args,
            json: true,
            sub: None,
        },
        None => Args::plain(vec![rest.to_string()]),
    })
}

/// Exec form when `rest` is a JSON string array, else blank-separated words.
fn maybe_json_to_list(rest: &str) -> Result<Args, ParseErrorKind> {
    Ok(match json_array(rest)? {
        Some(args) => Args {
            args,
            json: true,
            sub: None,
        },
        None => Args::plain(blank_delimited(rest)),
    })
}

/// `HEALTHCHECK NONE` / `HEALTHCHECK CMD <exec or shell form>`: the type, then the command.
fn health(rest: &str) -> Result<Args, ParseErrorKind> {
    let Some(typ) = rest
        .split(char::is_whitespace)
        .next()
        .filter(|t| !t.is_empty())
    else {
        return Ok(Args::default());
    };
    let mut out = maybe_json(rest[typ.len()..].trim_start())?;
    out.args.insert(0, typ.to_string());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            words("foo bar 'abc xyz'", '\\'),
            ["foo", "bar", "'abc xyz'"]
        );
        assert_eq!(words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(words("a=\"\" b", '\\'), ["a=\"\"", "b"]);
        assert_eq!(
            words("föo bàr \"âbc xÿz\"", '\\'),
            ["föo", "bàr", "\"âbc xÿz\""]
        );
    }

    #[test]
    fn flags_stop_at_double_dash_and_non_flag() {
        assert_eq!(
            extract_flags("--a=1 --b x y", '\\'),
            ("x y", vec!["--a=1".to_string(), "--b".to_string()])
        );
        assert_eq!(
            extract_flags("--a -- --b", '\\'),
            (" --b", vec!["--a".to_string()])
        );
        assert_eq!(
            extract_flags("--x=\"a b\" c", '\\'),
            ("c", vec!["--x=a b".to_string()])
        );
        assert_eq!(
            extract_flags("--only", '\\'),
            ("", vec!["--only".to_string()])
        );
    }
}
