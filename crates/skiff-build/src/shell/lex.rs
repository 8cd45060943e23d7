//! The expansion state machine: one pass over the characters of a word.

use std::collections::BTreeSet;

use super::{pattern, Env, Expansion, Lexer, ShellError};

type Res<T> = Result<T, String>;

const MISSING_BRACE: &str = "syntax error: missing '}'";

pub(super) fn expand(lexer: &Lexer, word: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
    let mut state = State {
        lexer,
        env,
        chars: word.chars().collect(),
        pos: 0,
        raw_escapes: lexer.raw_escapes,
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    match state.process_stop_on(None, lexer.raw_escapes) {
        Ok((result, words)) => Ok(Expansion {
            result,
            words,
            matched: state.matched,
            unmatched: state.unmatched,
        }),
        Err(message) => Err(ShellError {
            word: word.to_string(),
            message,
        }),
    }
}

/// Splits expanded text into words: unquoted whitespace separates, quoted text is kept whole.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct State<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = self.env.get(name);
        if value.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        value
    }

    /// Processes up to `stop` (consumed) or the end of input when `stop` is `None`.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.stop_on(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let s = self.dollar()?;
                    words.add_str(&s);
                    result.push_str(&s);
                }
                '<' => {
                    let s = self.possible_heredoc();
                    words.add_raw_str(&s);
                    result.push_str(&s);
                }
                '\'' if quotes => {
                    let s = self.single_quote()?;
                    words.add_raw_str(&s);
                    result.push_str(&s);
                }
                '"' if quotes => {
                    let s = self.double_quote()?;
                    words.add_raw_str(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.next();
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape token escapes the next character; alone at the end it
                        // disappears.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'...'`: everything literal up to the next `'`, which cannot be escaped.
    fn single_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let raw = self.lexer.raw_quotes;
        if let Some(q) = self.next().filter(|_| raw) {
            out.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if raw {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: literal except `$`, and the escape token before `"`, `$` or itself.
    fn double_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        let raw = self.lexer.raw_quotes;
        if let Some(q) = self.next().filter(|_| raw) {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if raw {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let s = self.dollar()?;
                    out.push_str(&s);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lexer.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// `$name`, `${name}` and `${name<modifier>...}`, with the `$` not yet consumed.
    fn dollar(&mut self) -> Res<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(MISSING_BRACE.into());
        };
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.modifier(name, ch),
            '/' => self.substitute(name),
            c => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }

    /// `${name:-word}` and friends, after the first modifier character `first`.
    fn modifier(&mut self, name: String, first: char) -> Res<String> {
        let mut chs = first.to_string();
        let (null_is_unset, op) = if first == ':' {
            let Some(op) = self.next() else {
                return Err(MISSING_BRACE.into());
            };
            chs.push(op);
            (true, op)
        } else {
            (false, first)
        };
        let raw = op == '#' || op == '%';
        if null_is_unset && raw {
            return Err(format!("unsupported modifier ({chs}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name);
        if self.lexer.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            '-' => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => match value {
                None => Err(format!(
                    "{name}: {}",
                    or(word, "is not allowed to be unset")
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    or(word, "is not allowed to be empty")
                )),
                Some(v) => Ok(v),
            },
            '%' | '#' => {
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                if op == '%' {
                    pattern::trim_suffix(&value, pat, greedy)
                } else {
                    pattern::trim_prefix(&value, pat, greedy)
                }
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`, after the first `/`.
    fn substitute(&mut self, name: String) -> Res<String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pat = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => {
                return Err("syntax error: missing '/' in ${}".into())
            }
            Err(e) => return Err(e),
        };
        let rep = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(&name);
        if self.lexer.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pat}/{rep}}}"));
        }
        pattern::replace(&value.unwrap_or_default(), &pat, &rep, all)
    }

    /// A variable name: letters, digits and `_`; or all the digits of a positional parameter;
    /// or one special parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    /// `<<` and the blanks after it stay together, so that `<< EOF` is one heredoc word.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }
}

fn or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}
