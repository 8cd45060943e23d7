//! Parser for Go `text/template` syntax, following Go's `parse.go`: builds
//! the tree of [`Node`]s and reports Go's parse error messages.

use super::super::gofmt;
use super::funcs;
use super::lex::{self, Item, Kw, Tok};
use super::{Arg, Branch, Cmd, Node, Number, Pipe, TemplateError};

/// Parses a whole template (Go's `Tree.parse`).
pub(super) fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let mut p = Parser {
        items: lex::lex(src),
        i: 0,
        vars: vec!["$".to_owned()],
        range_depth: 0,
        action_line: 0,
        line: 1,
    };
    let mut root = Vec::new();
    while p.peek().tok != Tok::Eof {
        match p.text_or_action()? {
            Parsed::Node(n) => root.push(n),
            Parsed::End => return Err(p.error("unexpected {{end}}")),
            Parsed::Else => return Err(p.error("unexpected {{else}}")),
        }
    }
    Ok(root)
}

enum Parsed {
    Node(Node),
    End,
    Else,
}

struct Parser {
    items: Vec<Item>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    action_line: usize,
    /// Line of the most recently consumed item, for error messages.
    line: usize,
}

type PResult<T> = Result<T, TemplateError>;

impl Parser {
    fn error(&self, msg: &str) -> TemplateError {
        TemplateError::Parse(format!("template: :{}: {msg}", self.line))
    }

    fn peek(&self) -> &Item {
        let last = self.items.len().saturating_sub(1);
        &self.items[self.i.min(last)]
    }

    fn next(&mut self) -> Item {
        let item = self.peek().clone();
        self.line = item.line;
        self.i = (self.i + 1).min(self.items.len());
        item
    }

    fn backup(&mut self) {
        self.i = self.i.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.tok != Tok::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn unexpected(&self, item: &Item, context: &str) -> TemplateError {
        if item.tok == Tok::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != item.line {
                extra = format!(" in action started at :{}", self.action_line);
                if item.val.ends_with(" action") {
                    extra = extra.replacen(" in action", "", 1);
                }
            }
            return self.error(&format!("{}{extra}", item.val));
        }
        self.error(&format!("unexpected {} in {context}", item.describe()))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> PResult<Item> {
        let item = self.next_non_space();
        if item.tok != tok {
            return Err(self.unexpected(&item, context));
        }
        Ok(item)
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let item = self.next_non_space();
        match item.tok {
            Tok::Text => Ok(Parsed::Node(Node::Text(item.val))),
            Tok::LeftDelim => {
                self.action_line = item.line;
                let res = self.action();
                self.action_line = 0;
                res
            }
            _ => Err(self.unexpected(&item, "input")),
        }
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Parsed)> {
        let mut list = Vec::new();
        while self.peek_non_space().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        Err(self.error("unexpected EOF"))
    }

    fn action(&mut self) -> PResult<Parsed> {
        let item = self.next_non_space();
        let node = match item.tok {
            Tok::Kw(kw @ (Kw::Break | Kw::Continue)) => {
                let name = if kw == Kw::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let next = self.next_non_space();
                if next.tok != Tok::RightDelim {
                    return Err(self.unexpected(&next, name));
                }
                if self.range_depth == 0 {
                    return Err(self.error(&format!("{name} outside {{{{range}}}}")));
                }
                if kw == Kw::Break {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            Tok::Kw(Kw::Else) => {
                if !matches!(self.peek_non_space().tok, Tok::Kw(Kw::If | Kw::With)) {
                    self.expect(Tok::RightDelim, "else")?;
                }
                return Ok(Parsed::Else);
            }
            Tok::Kw(Kw::End) => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            Tok::Kw(Kw::If) => Node::If(self.control("if")?),
            Tok::Kw(Kw::With) => Node::With(self.control("with")?),
            Tok::Kw(Kw::Range) => Node::Range(self.control("range")?),
            Tok::Kw(Kw::Template) => {
                let name = self.next_non_space();
                let unquoted = match name.tok {
                    Tok::Str | Tok::RawStr => lex::unquote(&name.val),
                    _ => return Err(self.unexpected(&name, "template clause")),
                };
                let Some(unquoted) = unquoted else {
                    return Err(self.error("invalid syntax"));
                };
                let pipe = match self.next_non_space().tok {
                    Tok::RightDelim => None,
                    _ => {
                        self.backup();
                        Some(self.pipeline("template clause", Tok::RightDelim)?)
                    }
                };
                Node::Template {
                    pos: name.pos,
                    name: unquoted,
                    quoted: name.val,
                    pipe,
                }
            }
            Tok::Kw(Kw::Define | Kw::Block) => {
                return Err(self.error(&format!("{{{{{}}}}} is not supported", item.val)));
            }
            _ => {
                self.backup();
                Node::Action(self.pipeline("command", Tok::RightDelim)?)
            }
        };
        Ok(Parsed::Node(node))
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        let in_range = context == "range";
        self.range_depth += usize::from(in_range);
        let listed = self.item_list();
        self.range_depth -= usize::from(in_range);
        let (list, next) = listed?;
        let mut else_list = None;
        if let Parsed::Else = next {
            let chained = match (context, self.peek().tok) {
                ("if", Tok::Kw(Kw::If)) => Some(true),
                ("with", Tok::Kw(Kw::With)) => Some(false),
                _ => None,
            };
            else_list = Some(match chained {
                Some(is_if) => {
                    self.next();
                    let branch = self.control(context)?;
                    vec![if is_if {
                        Node::If(branch)
                    } else {
                        Node::With(branch)
                    }]
                }
                None => match self.item_list()? {
                    (l, Parsed::End) => l,
                    _ => return Err(self.error("expected end; found {{else}}")),
                },
            });
        }
        self.vars.truncate(nvars);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let mut pipe = Pipe {
            pos: self.peek_non_space().pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        while self.peek_non_space().tok == Tok::Var {
            let save = self.i;
            let var = self.next_non_space();
            let next = self.peek_non_space();
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    self.next_non_space();
                    pipe.is_assign = next.tok == Tok::Assign;
                    pipe.decl.push(var.val.clone());
                    self.vars.push(var.val);
                    break;
                }
                Tok::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(var.val.clone());
                    self.vars.push(var.val);
                    let follow = self.peek_non_space().tok;
                    if context == "range" && pipe.decl.len() < 2 {
                        if matches!(follow, Tok::Var | Tok::RightDelim | Tok::RParen) {
                            continue;
                        }
                        return Err(self.error("range can only initialize variables"));
                    }
                    return Err(self.error(&format!("too many declarations in {context}")));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let item = self.next_non_space();
            match item.tok {
                t if t == end => break,
                Tok::Bool
                | Tok::CharConst
                | Tok::Dot
                | Tok::Field
                | Tok::Ident
                | Tok::Number
                | Tok::Kw(Kw::Nil)
                | Tok::RawStr
                | Tok::Str
                | Tok::Var
                | Tok::LParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&item, context)),
            }
        }
        if pipe.cmds.is_empty() {
            return Err(self.error(&format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Num { .. }
                        | Arg::Str { .. }
                )
            ) {
                return Err(self.error(&format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(pipe)
    }

    fn command(&mut self) -> PResult<Cmd> {
        let mut cmd = Cmd {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(arg) = self.operand()? {
                cmd.args.push(arg);
            }
            let item = self.next();
            match item.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&item, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.error("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().tok != Tok::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut more = Vec::new();
        while self.peek().tok == Tok::Field {
            more.push(self.next().val[1..].to_owned());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(more);
                Arg::Field { pos, idents }
            }
            Arg::Var {
                name, mut idents, ..
            } => {
                idents.extend(more);
                Arg::Var { pos, name, idents }
            }
            Arg::Bool { .. }
            | Arg::Str { .. }
            | Arg::Num { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                let text = gofmt::quote(&node.to_string());
                return Err(self.error(&format!("unexpected . after term {text}")));
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                idents: more,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let item = self.next_non_space();
        let pos = item.pos;
        Ok(Some(match item.tok {
            Tok::Ident => {
                if !funcs::is_function(&item.val) {
                    return Err(
                        self.error(&format!("function {} not defined", gofmt::quote(&item.val)))
                    );
                }
                Arg::Func {
                    pos,
                    name: item.val,
                }
            }
            Tok::Dot => Arg::Dot { pos },
            Tok::Kw(Kw::Nil) => Arg::Nil { pos },
            Tok::Var => {
                if !self.vars.contains(&item.val) {
                    return Err(
                        self.error(&format!("undefined variable {}", gofmt::quote(&item.val)))
                    );
                }
                Arg::Var {
                    pos,
                    name: item.val,
                    idents: Vec::new(),
                }
            }
            Tok::Field => Arg::Field {
                pos,
                idents: vec![item.val[1..].to_owned()],
            },
            Tok::Bool => Arg::Bool {
                pos,
                val: item.val == "true",
            },
            Tok::Number | Tok::CharConst => Arg::Num {
                pos,
                num: self.number(&item)?,
            },
            Tok::LParen => Arg::Pipe(Box::new(
                self.pipeline("parenthesized pipeline", Tok::RParen)?,
            )),
            Tok::Str | Tok::RawStr => match lex::unquote(&item.val) {
                Some(val) => Arg::Str {
                    pos,
                    quoted: item.val,
                    val,
                },
                None => return Err(self.error("invalid syntax")),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    /// Go's `newNumber`: which of int/uint/float a literal can be.
    fn number(&self, item: &Item) -> PResult<Number> {
        let text = item.val.clone();
        if item.tok == Tok::CharConst {
            let c = lex::unquote(&text)
                .and_then(|s| s.chars().next())
                .ok_or_else(|| self.error(&format!("malformed character constant: {text}")))?;
            let v = i64::from(u32::from(c));
            return Ok(Number {
                text,
                int: Some(v),
                uint: true,
                float: Some(v as f64),
                float_syntax: false,
            });
        }
        let float_syntax = !text.contains(['x', 'X']) && text.contains(['.', 'e', 'E', 'p', 'P']);
        // Like Go, try int64 and uint64 first, then float64.
        let wide =
            parse_go_int(&text).filter(|w| i64::try_from(*w).is_ok() || u64::try_from(*w).is_ok());
        let mut num = Number {
            int: wide.and_then(|w| i64::try_from(w).ok()),
            uint: false,
            float: None,
            float_syntax,
            text,
        };
        num.uint = wide.is_some_and(|w| u64::try_from(w).is_ok());
        num.float = wide.map(|w| w as f64);
        if wide.is_none() {
            if let Some(f) = num
                .text
                .replace('_', "")
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
            {
                if !float_syntax {
                    return Err(
                        self.error(&format!("integer overflow: {}", gofmt::quote(&num.text)))
                    );
                }
                num.float = Some(f);
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    num.int = Some(f as i64);
                }
            }
        }
        if num.int.is_none() && !num.uint && num.float.is_none() {
            return Err(self.error(&format!(
                "illegal number syntax: {}",
                gofmt::quote(&num.text)
            )));
        }
        Ok(num)
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)` without the range check.
fn parse_go_int(text: &str) -> Option<i128> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ if lower.len() > 1 && lower.starts_with('0') => (8, &lower[1..]),
        _ => (10, lower.as_str()),
    };
    if digits.is_empty() {
        return None;
    }
    let v = i128::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::super::Template;
    use super::*;

    fn perr(src: &str) -> String {
        match Template::parse(src) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parse_errors_match_go() {
        let p = "template parsing error: template: ";
        assert_eq!(perr("{{.A"), format!("{p}:1: unclosed action"));
        assert_eq!(
            perr("a\n{{.A\n"),
            format!("{p}:3: unclosed action started at :2")
        );
        assert_eq!(
            perr("{{InvalidFunction}}"),
            format!("{p}:1: function \"InvalidFunction\" not defined")
        );
        assert_eq!(perr("{{if .A}}x"), format!("{p}:1: unexpected EOF"));
        assert_eq!(perr("{{end}}"), format!("{p}:1: unexpected {{{{end}}}}"));
        assert_eq!(perr("{{else}}"), format!("{p}:1: unexpected {{{{else}}}}"));
        assert_eq!(perr("{{}}"), format!("{p}:1: missing value for command"));
        assert_eq!(
            perr("{{if}}{{end}}"),
            format!("{p}:1: missing value for if")
        );
        assert_eq!(
            perr("{{.A | | .B}}"),
            format!("{p}:1: unexpected \"|\" in command")
        );
        assert_eq!(perr("{{$x}}"), format!("{p}:1: undefined variable \"$x\""));
        assert_eq!(
            perr("{{if 1}}{{$x := 1}}{{end}}{{$x}}"),
            format!("{p}:1: undefined variable \"$x\"")
        );
        assert_eq!(
            perr("{{.A | \"x\"}}"),
            format!("{p}:1: non executable command in pipeline stage 2")
        );
        assert_eq!(
            perr("{{break}}"),
            format!("{p}:1: {{{{break}}}} outside {{{{range}}}}")
        );
        assert_eq!(
            perr("{{range .}}{{else}}{{break}}{{end}}"),
            format!("{p}:1: {{{{break}}}} outside {{{{range}}}}")
        );
        assert_eq!(
            perr("{{range .}}{{else}}{{else}}{{end}}"),
            format!("{p}:1: expected end; found {{{{else}}}}")
        );
        assert_eq!(perr("{{end x}}"), format!("{p}:1: unexpected \"x\" in end"));
        assert_eq!(
            perr("{{\"a\".B}}"),
            format!("{p}:1: unexpected . after term \"\\\"a\\\"\"")
        );
        assert_eq!(
            perr("{{with $x, $y := .}}{{end}}"),
            format!("{p}:1: too many declarations in with")
        );
        assert_eq!(
            perr("{{99999999999999999999}}"),
            format!("{p}:1: integer overflow: \"99999999999999999999\"")
        );
        assert_eq!(
            perr("{{define \"x\"}}{{end}}"),
            format!("{p}:1: {{{{define}}}} is not supported")
        );
    }

    #[test]
    fn go_int_literals() {
        assert_eq!(parse_go_int("0x1F"), Some(31));
        assert_eq!(parse_go_int("017"), Some(15));
        assert_eq!(parse_go_int("-0b101"), Some(-5));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("0x_ff"), Some(255));
        assert_eq!(parse_go_int("1.5"), None);
    }
}
