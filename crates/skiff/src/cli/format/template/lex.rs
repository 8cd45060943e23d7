//! Lexer for Go `text/template` syntax (modern Go: trim markers, comments,
//! newlines inside actions, `=` assignment, `break`/`continue`).

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Field,
    Ident,
    Var,
    Dot,
    Bool,
    Number,
    Str,
    RawStr,
    CharConst,
    Pipe,
    LParen,
    RParen,
    Char,
    Assign,
    Declare,
    Kw(Kw),
    Eof,
    Error,
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    pub tok: Tok,
    pub pos: usize,
    pub line: usize,
    /// Source text of the token (the message for `Tok::Error`).
    pub val: String,
}

impl Item {
    /// Go's `item.String()`, used in "unexpected ..." parse errors.
    pub fn describe(&self) -> String {
        match self.tok {
            Tok::Eof => "EOF".to_owned(),
            Tok::Error => self.val.clone(),
            Tok::Kw(_) => format!("<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let short: String = self.val.chars().take(10).collect();
                format!("{}...", super::super::gofmt::quote(&short))
            }
            _ => super::super::gofmt::quote(&self.val),
        }
    }
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const SPACES: &[char] = &[' ', '\t', '\r', '\n'];

fn is_space(c: char) -> bool {
    SPACES.contains(&c)
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(char::from(b[1]))
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(char::from(b[0])) && b[1] == b'-'
}

/// Go's `%#U` rendering of a rune: `U+0023 '#'`.
pub(super) fn rune_desc(c: char) -> String {
    let mut s = format!("U+{:04X}", c as u32);
    if !c.is_control() {
        let _ = write!(s, " '{c}'");
    }
    s
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    start: usize,
    items: Vec<Item>,
}

/// Splits `src` into items; the last item is `Eof` or `Error`.
pub(super) fn lex(src: &str) -> Vec<Item> {
    let mut lx = Lexer {
        src,
        pos: 0,
        start: 0,
        items: Vec::new(),
    };
    lx.run();
    lx.items
}

impl Lexer<'_> {
    fn line_at(&self, pos: usize) -> usize {
        1 + self.src[..pos].matches('\n').count()
    }

    fn emit(&mut self, tok: Tok) {
        let val = self.src[self.start..self.pos].to_owned();
        self.items.push(Item {
            tok,
            pos: self.start,
            line: self.line_at(self.start),
            val,
        });
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> bool {
        self.items.push(Item {
            tok: Tok::Error,
            pos: self.start,
            line: self.line_at(self.pos),
            val: msg,
        });
        false
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn run(&mut self) {
        loop {
            let Some(x) = self.src[self.pos..].find(LEFT) else {
                self.pos = self.src.len();
                if self.pos > self.start {
                    self.emit(Tok::Text);
                }
                self.emit(Tok::Eof);
                return;
            };
            let delim = self.pos + x;
            let after = delim + LEFT.len();
            let trim = has_left_trim(&self.src[after..]);
            self.pos = if trim {
                self.start + self.src[self.start..delim].trim_end_matches(SPACES).len()
            } else {
                delim
            };
            if self.pos > self.start {
                self.emit(Tok::Text);
            }
            self.pos = after + if trim { 2 } else { 0 };
            self.start = self.pos;
            if self.src[self.pos..].starts_with("/*") {
                if !self.comment() {
                    return;
                }
                continue;
            }
            self.items.push(Item {
                tok: Tok::LeftDelim,
                pos: delim,
                line: self.line_at(delim),
                val: LEFT.to_owned(),
            });
            if !self.inside_action() {
                return;
            }
        }
    }

    fn at_right_delim(&self) -> Option<bool> {
        let rest = &self.src[self.pos..];
        if rest.starts_with(RIGHT) {
            Some(false)
        } else if has_right_trim(rest) && rest[2..].starts_with(RIGHT) {
            Some(true)
        } else {
            None
        }
    }

    fn skip_leading_space(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches(SPACES).len();
        self.start = self.pos;
    }

    fn comment(&mut self) -> bool {
        let Some(end) = self.src[self.pos + 2..].find("*/") else {
            return self.error("unclosed comment".to_owned());
        };
        self.pos += 2 + end + 2;
        let Some(trim) = self.at_right_delim() else {
            return self.error("comment ends before closing delimiter".to_owned());
        };
        self.pos += RIGHT.len() + if trim { 2 } else { 0 };
        self.start = self.pos;
        if trim {
            self.skip_leading_space();
        }
        true
    }

    fn inside_action(&mut self) -> bool {
        let mut depth = 0i32;
        loop {
            if let Some(trim) = self.at_right_delim() {
                if depth != 0 {
                    return self.error("unclosed left paren".to_owned());
                }
                if trim {
                    self.pos += 2;
                    self.start = self.pos;
                }
                self.pos += RIGHT.len();
                self.emit(Tok::RightDelim);
                if trim {
                    self.skip_leading_space();
                }
                return true;
            }
            let Some(c) = self.next() else {
                return self.error("unclosed action".to_owned());
            };
            let ok = match c {
                c if is_space(c) => {
                    self.pos -= c.len_utf8();
                    self.space()
                }
                '=' => self.emit_ok(Tok::Assign),
                ':' if self.accept("=") => self.emit_ok(Tok::Declare),
                ':' => self.error("expected :=".to_owned()),
                '|' => self.emit_ok(Tok::Pipe),
                '"' => self.quote('"', Tok::Str, "unterminated quoted string"),
                '\'' => self.quote('\'', Tok::CharConst, "unterminated character constant"),
                '`' => match self.src[self.pos..].find('`') {
                    Some(end) => {
                        self.pos += end + 1;
                        self.emit_ok(Tok::RawStr)
                    }
                    None => self.error("unterminated raw quoted string".to_owned()),
                },
                '$' => self.field_or_var(Tok::Var),
                '.' if self.peek().is_some_and(|n| !n.is_ascii_digit()) => {
                    self.field_or_var(Tok::Field)
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.number()
                }
                c if is_alnum(c) => self.identifier(),
                '(' => {
                    depth += 1;
                    self.emit_ok(Tok::LParen)
                }
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return self.error("unexpected right paren".to_owned());
                    }
                    self.emit_ok(Tok::RParen)
                }
                c if c.is_ascii_graphic() => self.emit_ok(Tok::Char),
                c => self.error(format!(
                    "unrecognized character in action: {}",
                    rune_desc(c)
                )),
            };
            if !ok {
                return false;
            }
        }
    }

    fn emit_ok(&mut self, tok: Tok) -> bool {
        self.emit(tok);
        true
    }

    fn space(&mut self) -> bool {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            n += 1;
        }
        // A space followed by "-}}" belongs to the trim marker.
        let back = &self.src[self.pos - 1..];
        if has_right_trim(back) && back[2..].starts_with(RIGHT) {
            self.pos -= 1;
            if n == 1 {
                return true;
            }
        }
        self.emit_ok(Tok::Space)
    }

    fn quote(&mut self, q: char, tok: Tok, unterminated: &str) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return self.error(unterminated.to_owned()),
                    Some(_) => {}
                },
                Some('\n') | None => return self.error(unterminated.to_owned()),
                Some(c) if c == q => return self.emit_ok(tok),
                Some(_) => {}
            }
        }
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) => is_space(c) || ".,|:()".contains(c) || RIGHT.starts_with(c),
        }
    }

    fn field_or_var(&mut self, tok: Tok) -> bool {
        if self.at_terminator() {
            return self.emit_ok(if tok == Tok::Var { Tok::Var } else { Tok::Dot });
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        self.finish_word(tok)
    }

    fn finish_word(&mut self, tok: Tok) -> bool {
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.error(format!("bad character {}", rune_desc(c)));
        }
        self.emit_ok(tok)
    }

    fn identifier(&mut self) -> bool {
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        let tok = match &self.src[self.start..self.pos] {
            "block" => Tok::Kw(Kw::Block),
            "break" => Tok::Kw(Kw::Break),
            "continue" => Tok::Kw(Kw::Continue),
            "define" => Tok::Kw(Kw::Define),
            "else" => Tok::Kw(Kw::Else),
            "end" => Tok::Kw(Kw::End),
            "if" => Tok::Kw(Kw::If),
            "nil" => Tok::Kw(Kw::Nil),
            "range" => Tok::Kw(Kw::Range),
            "template" => Tok::Kw(Kw::Template),
            "with" => Tok::Kw(Kw::With),
            "true" | "false" => Tok::Bool,
            _ => Tok::Ident,
        };
        self.finish_word(tok)
    }

    fn number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if self
            .peek()
            .is_some_and(|c| is_alnum(c) || c == '+' || c == '-')
        {
            self.next();
            let text = self.src[self.start..self.pos].to_owned();
            return self.error(format!(
                "bad number syntax: {}",
                super::super::gofmt::quote(&text)
            ));
        }
        self.emit_ok(Tok::Number)
    }
}

/// Go's `strconv.Unquote` for `"..."`, `` `...` `` and `'.'` literals.
pub(super) fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    let inner = s.strip_prefix(quote)?.strip_suffix(quote)?;
    if quote == '`' {
        return Some(inner.replace('\r', ""));
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote || c == '\n' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let h: String = chars.by_ref().take(n).collect();
            (h.len() == n).then_some(())?;
            char::from_u32(u32::from_str_radix(&h, 16).ok()?)
        };
        out.push(match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            '\'' | '"' if e == quote => e,
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                (rest.len() == 2).then_some(())?;
                char::from_u32(
                    u32::from_str_radix(&format!("{e}{rest}"), 8)
                        .ok()
                        .filter(|v| *v < 256)?,
                )?
            }
            _ => return None,
        });
    }
    (quote != '\'' || out.chars().count() == 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<(Tok, String)> {
        lex(src).into_iter().map(|i| (i.tok, i.val)).collect()
    }

    #[test]
    fn lexes_actions_and_text() {
        let t = toks("a {{.A.B | printf \"%d\" 12}} b");
        let kinds: Vec<Tok> = t.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                Tok::Text,
                Tok::LeftDelim,
                Tok::Field,
                Tok::Field,
                Tok::Space,
                Tok::Pipe,
                Tok::Space,
                Tok::Ident,
                Tok::Space,
                Tok::Str,
                Tok::Space,
                Tok::Number,
                Tok::RightDelim,
                Tok::Text,
                Tok::Eof
            ]
        );
        assert_eq!(t[2].1, ".A");
        assert_eq!(t[3].1, ".B");
    }

    #[test]
    fn trim_markers() {
        let t = toks("a  \n{{- .A -}}\n  b");
        assert_eq!(t[0], (Tok::Text, "a".to_owned()));
        assert_eq!(t[2], (Tok::Field, ".A".to_owned()));
        assert_eq!(t[3].0, Tok::RightDelim);
        assert_eq!(t[4], (Tok::Text, "b".to_owned()));
        // "{{-3}}" is a number, not a trim marker.
        assert_eq!(toks("{{-3}}")[1], (Tok::Number, "-3".to_owned()));
        // Comments vanish, with trimming.
        assert_eq!(toks("x {{- /* c */ -}} y")[1], (Tok::Text, "y".to_owned()));
    }

    #[test]
    fn lexer_errors() {
        let last = |s: &str| lex(s).pop().map(|i| i.val).unwrap_or_default();
        assert_eq!(last("{{.A"), "unclosed action");
        assert_eq!(last("{{(.A}}"), "unclosed left paren");
        assert_eq!(last("{{.A)}}"), "unexpected right paren");
        assert_eq!(last("{{\"abc}}"), "unterminated quoted string");
        assert_eq!(last("{{.A#}}"), "bad character U+0023 '#'");
        assert_eq!(last("{{/* x }}"), "unclosed comment");
        assert_eq!(last("{{3x}}"), "bad number syntax: \"3x\"");
        assert_eq!(last("{{a : b}}"), "expected :=");
    }

    #[test]
    fn unquotes_go_literals() {
        assert_eq!(
            unquote(r#""a\tb\"\x41\u00e9""#).as_deref(),
            Some("a\tb\"Aé")
        );
        assert_eq!(unquote("`a\\n`").as_deref(), Some("a\\n"));
        assert_eq!(unquote("'x'").as_deref(), Some("x"));
        assert_eq!(unquote(r#""\q""#), None);
        assert_eq!(unquote("'xy'"), None);
    }
}
