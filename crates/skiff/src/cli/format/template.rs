//! A Go `text/template` engine over [`serde_json::Value`], as docker's
//! `--format` and `inspect -f` use it.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and
//! `{{/* comments */}}`; fields `.A.B`, `.`, `$`, `$x.A`, `(pipeline).A`;
//! variables (`{{$x := .A}}`, `{{$x = .B}}`); pipelines `|`; `if`/`else if`/
//! `else`, `with`/`else with`/`else`, `range` over arrays, maps (sorted keys)
//! and integers with `$i, $v :=`, `else`, `break`, `continue`; string, raw
//! string, character, number, bool and `nil` literals. Functions: Go's
//! builtins (`and or not len index slice print printf println html urlquery
//! eq ne lt le gt ge`) and docker's (`json split join title lower upper pad
//! truncate`). `define`/`template`/`block` are not supported.
//!
//! Values are printed as Go prints decoded JSON: a missing map key is
//! `<no value>`, maps are `map[k:v]` with sorted keys, arrays `[a b]`, nested
//! nulls `<nil>`. Integers behave as Go `int`, other numbers as `float64`.
//! Errors carry docker's text, e.g. `template parsing error: template: :1:
//! unclosed action` or `template parsing error: template: :1:2: executing ""
//! at <.A.B>: nil pointer evaluating interface {}.B`.

use std::fmt;

use serde_json::Value;

mod exec;
mod funcs;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

/// A template parse or execution error; displays as docker prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is invalid, e.g. `template: :1: unclosed action`.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// Executing the template failed, e.g. `template: :1:2: executing ""
    /// at <.A.B>: nil pointer evaluating interface {}.B`.
    #[error("template parsing error: {0}")]
    Exec(String),
}

impl TemplateError {
    /// The Go `text/template` message, without docker's
    /// `template parsing error: ` prefix.
    pub fn go_message(&self) -> &str {
        match self {
            TemplateError::Parse(m) | TemplateError::Exec(m) => m,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<Node>,
    missing_key_error: bool,
    typed: Option<Typed>,
}

/// The data stands for a Go struct (see [`Template::typed`]).
#[derive(Debug, Clone)]
struct Typed {
    type_name: String,
    map_fields: Vec<String>,
}

impl Template {
    /// Parses `src` (Go's `template.New("").Funcs(docker).Parse(src)`).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let root = parse::parse(src)?;
        Ok(Template {
            src: src.to_owned(),
            root,
            missing_key_error: false,
            typed: None,
        })
    }

    /// Go's `Option("missingkey=error")`, used by docker's `inspect -f`
    /// fallback: a missing map key fails with `map has no entry for key "X"`
    /// instead of printing `<no value>`.
    pub fn missing_key_error(mut self, on: bool) -> Template {
        self.missing_key_error = on;
        self
    }

    /// Executes as if the data were a Go struct named `type_name` (docker's
    /// `*formatter.imageContext` for list rows, `types.ImageInspect` for inspect), as far as
    /// the difference shows: a field missing from an object fails with `can't evaluate field X
    /// in type T` instead of printing `<no value>`, except in the objects found under a key
    /// listed in `map_fields` (Go maps, such as `Labels`); and `json` of the whole data is
    /// HTML-escaped (`\u003cnone\u003e`), as a context's `MarshalJSON` is.
    pub fn typed(mut self, type_name: &str, map_fields: &[&str]) -> Template {
        self.typed = Some(Typed {
            type_name: type_name.to_owned(),
            map_fields: map_fields.iter().map(|f| (*f).to_owned()).collect(),
        });
        self
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        exec::execute(self, data, false, &mut out)?;
        Ok(out)
    }

    /// Executes with docker's `HeaderFunctions` (json, split, join, title,
    /// lower, upper and truncate return their first argument unchanged), as
    /// for a table header. Like docker, an error ends the output silently,
    /// keeping what was written before it.
    pub(crate) fn execute_header(&self, headers: &Value) -> String {
        let mut out = String::new();
        let _ = exec::execute(self, headers, true, &mut out);
        out
    }

    /// Go's `ErrorContext` location `:line:col` for a byte offset.
    fn location(&self, pos: usize) -> String {
        let before = &self.src[..pos.min(self.src.len())];
        let col = before.rfind('\n').map_or(pos, |nl| pos - nl - 1);
        format!(":{}:{}", 1 + before.matches('\n').count(), col)
    }
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
    /// `{{template "name" pipeline}}`: no templates can be defined, so
    /// executing one fails as in Go (`template "name" not defined`).
    Template {
        pos: usize,
        name: String,
        quoted: String,
        pipe: Option<Pipe>,
    },
}

#[derive(Debug, Clone)]
struct Branch {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    decl: Vec<String>,
    is_assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Number {
    text: String,
    int: Option<i64>,
    uint: bool,
    float: Option<f64>,
    float_syntax: bool,
}

#[derive(Debug, Clone)]
enum Arg {
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    Var {
        pos: usize,
        name: String,
        idents: Vec<String>,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Num {
        pos: usize,
        num: Number,
    },
    Str {
        pos: usize,
        quoted: String,
        val: String,
    },
    Func {
        pos: usize,
        name: String,
    },
    Pipe(Box<Pipe>),
    Chain {
        pos: usize,
        node: Box<Arg>,
        idents: Vec<String>,
    },
}

impl Arg {
    fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Var { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Num { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Func { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

fn write_idents(f: &mut fmt::Formatter<'_>, idents: &[String]) -> fmt::Result {
    idents.iter().try_for_each(|i| write!(f, ".{i}"))
}

/// Go's `Node.String()` forms, used in execution error contexts.
impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => write_idents(f, idents),
            Arg::Var { name, idents, .. } => {
                f.write_str(name)?;
                write_idents(f, idents)
            }
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Bool { val, .. } => write!(f, "{val}"),
            Arg::Num { num, .. } => f.write_str(&num.text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Func { name, .. } => f.write_str(name),
            Arg::Pipe(p) => write!(f, "({p})"),
            Arg::Chain { node, idents, .. } => {
                write!(f, "{node}")?;
                write_idents(f, idents)
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{} := ", self.decl.join(", "))?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
