//! Template execution, following Go's `text/template/exec.go` over decoded
//! JSON (`map[string]interface{}` semantics).

use std::collections::HashSet;
use std::rc::Rc;

use serde_json::Value;

use super::super::gofmt;
use super::funcs::{self, Sig, P};
use super::{Arg, Branch, Cmd, Node, Number, Pipe, Template, TemplateError};

/// A runtime value. `Missing` is Go's invalid `reflect.Value` (a missing map
/// key, printed `<no value>`). The flag tells whether the value is still held
/// in an `interface{}` (an element of a decoded map or slice): a JSON `null`
/// there is a nil interface, and Go unwraps such values at the end of each
/// pipeline stage (nil becoming `Missing`).
#[derive(Clone, Debug)]
pub(super) enum Val<'a> {
    Missing,
    Ref(&'a Value, bool),
    Own(Rc<Value>, bool),
}

impl<'a> Val<'a> {
    pub(super) fn own(v: Value) -> Self {
        Val::Own(Rc::new(v), false)
    }

    /// A nil `interface{}`, as Go's zero value of a map's element type.
    pub(super) fn nil_iface() -> Self {
        Val::Own(Rc::new(Value::Null), true)
    }

    fn is_iface(&self) -> bool {
        matches!(self, Val::Ref(_, true) | Val::Own(_, true))
    }

    pub(super) fn get(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v, _) => Some(v),
            Val::Own(v, _) => Some(v),
        }
    }

    pub(super) fn key(&self, k: &str) -> Option<Val<'a>> {
        match self {
            Val::Ref(v, _) => v.get(k).map(|c| Val::Ref(c, true)),
            Val::Own(v, _) => v.get(k).map(|c| Val::Own(Rc::new(c.clone()), true)),
            Val::Missing => None,
        }
    }

    pub(super) fn index(&self, i: usize) -> Option<Val<'a>> {
        match self {
            Val::Ref(v, _) => v.get(i).map(|c| Val::Ref(c, true)),
            Val::Own(v, _) => v.get(i).map(|c| Val::Own(Rc::new(c.clone()), true)),
            Val::Missing => None,
        }
    }

    /// Go's "dig down one level" for `interface{}` values: nil becomes invalid.
    fn unwrap_nil(self) -> Self {
        match self {
            Val::Ref(Value::Null, _) => Val::Missing,
            Val::Own(v, _) if v.is_null() => Val::Missing,
            Val::Ref(v, _) => Val::Ref(v, false),
            Val::Own(v, _) => Val::Own(v, false),
            Val::Missing => Val::Missing,
        }
    }
}

/// A function argument after Go's `evalArg`/`validateType`.
pub(super) enum A<'a> {
    V(Val<'a>),
    S(String),
    I(i64),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// The node being evaluated, for error messages (Go's `state.at`).
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Arg(&'t Arg),
    Cmd(&'t Cmd),
    Pipe(&'t Pipe),
    Action(&'t Pipe),
    Template(usize, &'t str, Option<&'t Pipe>),
}

type R<T> = Result<T, TemplateError>;

struct State<'a, 't, 'o> {
    tmpl: &'t Template,
    header: bool,
    /// The data, and the objects in it that stand for Go maps, when the template is typed.
    root: Option<&'a Value>,
    maps: HashSet<*const Value>,
    vars: Vec<(&'t str, Val<'a>)>,
    at: At<'t>,
    out: &'o mut String,
}

/// Runs `tmpl` over `data`, appending to `out` (partial output is kept on
/// error, as with Go's writer).
pub(super) fn execute(tmpl: &Template, data: &Value, header: bool, out: &mut String) -> R<()> {
    let root = if data.is_null() {
        Val::Missing
    } else {
        Val::Ref(data, false)
    };
    let mut maps = HashSet::new();
    if let Some(typed) = &tmpl.typed {
        collect_maps(data, &typed.map_fields, &mut maps);
    }
    let mut st = State {
        tmpl,
        header,
        root: tmpl.typed.as_ref().map(|_| data),
        maps,
        vars: vec![("$", root.clone())],
        at: At::None,
        out,
    };
    st.walk(&root, &tmpl.root).map(|_| ())
}

/// The objects found under one of `fields`, anywhere in `v`.
fn collect_maps(v: &Value, fields: &[String], out: &mut HashSet<*const Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if child.is_object() && fields.iter().any(|f| f == k) {
                    out.insert(child as *const Value);
                }
                collect_maps(child, fields, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_maps(c, fields, out)),
        _ => {}
    }
}

impl<'a, 't> State<'a, 't, '_> {
    /// Whether `recv` stands for a Go struct (typed templates only): an object of the data
    /// that is not a map.
    fn is_struct(&self, recv: &Val<'a>) -> bool {
        match (self.root, recv) {
            (Some(_), Val::Ref(v, _)) => {
                v.is_object() && !self.maps.contains(&(*v as *const Value))
            }
            _ => false,
        }
    }

    /// Whether `v` is the whole data of a typed template.
    fn is_root(&self, v: &Val<'a>) -> bool {
        match (self.root, v) {
            (Some(root), Val::Ref(v, _)) => std::ptr::eq(root, *v),
            _ => false,
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> TemplateError {
        let (pos, ctx) = match self.at {
            At::None => return TemplateError::Exec(format!("template: : {msg}")),
            At::Arg(a) => (a.pos(), a.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Action(p) => (p.pos, format!("{{{{{p}}}}}")),
            At::Template(pos, quoted, None) => (pos, format!("{{{{template {quoted}}}}}")),
            At::Template(pos, quoted, Some(p)) => (pos, format!("{{{{template {quoted} {p}}}}}")),
        };
        TemplateError::Exec(format!(
            "template: {}: executing \"\" at <{ctx}>: {msg}",
            self.tmpl.location(pos)
        ))
    }

    fn walk(&mut self, dot: &Val<'a>, nodes: &'t [Node]) -> R<Flow> {
        for node in nodes {
            let flow = match node {
                Node::Text(s) => {
                    self.out.push_str(s);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let val = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.at = At::Action(pipe);
                        match val.get() {
                            None => self.out.push_str("<no value>"),
                            Some(v) => self.out.push_str(&gofmt::to_string(Some(v))),
                        }
                    }
                    Flow::Normal
                }
                Node::If(b) => self.walk_if_or_with(dot, b, false)?,
                Node::With(b) => self.walk_if_or_with(dot, b, true)?,
                Node::Range(b) => self.walk_range(dot, b)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::Template {
                    pos,
                    name,
                    quoted,
                    pipe,
                } => {
                    self.at = At::Template(*pos, quoted, pipe.as_ref());
                    let msg = format!("template {} not defined", gofmt::quote(name));
                    return Err(self.err(msg));
                }
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Val<'a>, b: &'t Branch, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if funcs::is_true(&val) {
            self.walk(if with { &val } else { dot }, &b.list)?
        } else if let Some(else_list) = &b.else_list {
            self.walk(dot, else_list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Val<'a>, b: &'t Branch) -> R<Flow> {
        let mark0 = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let ran = match val.get() {
            None => false,
            Some(Value::Array(a)) => {
                for i in 0..a.len() {
                    let elem = val.index(i).unwrap_or(Val::Missing);
                    if self.range_once(b, mark, Val::own(Value::from(i)), elem)? {
                        break;
                    }
                }
                !a.is_empty()
            }
            Some(Value::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in &keys {
                    let elem = val.key(k).unwrap_or(Val::Missing);
                    if self.range_once(b, mark, Val::own(Value::from(k.as_str())), elem)? {
                        break;
                    }
                }
                !keys.is_empty()
            }
            Some(v @ Value::Number(n)) if n.is_i64() => {
                if b.pipe.decl.len() > 1 {
                    let shown = gofmt::to_string(Some(v));
                    return Err(self.err(format!(
                        "can't use {shown} to iterate over more than one variable"
                    )));
                }
                let n = n.as_i64().unwrap_or(0);
                for i in 0..n {
                    if self.range_once(b, mark, Val::Missing, Val::own(Value::from(i)))? {
                        break;
                    }
                }
                n > 0
            }
            Some(v) => {
                let shown = gofmt::to_string(Some(v));
                return Err(self.err(format!("range can't iterate over {shown}")));
            }
        };
        let mut flow = Flow::Normal;
        if !ran {
            if let Some(else_list) = &b.else_list {
                flow = self.walk(dot, else_list)?;
            }
        }
        self.vars.truncate(mark0);
        Ok(flow)
    }

    /// One `range` iteration; returns whether the body hit `{{break}}`.
    fn range_once(&mut self, b: &'t Branch, mark: usize, index: Val<'a>, elem: Val<'a>) -> R<bool> {
        // Go's setTopVar: the last declared variable gets the element, the
        // one before it the index (or key).
        let ndecl = b.pipe.decl.len();
        if ndecl >= 1 {
            if let Some(slot) = self.vars.get_mut(mark - 1) {
                slot.1 = elem.clone();
            }
        }
        if ndecl >= 2 {
            if let Some(slot) = self.vars.get_mut(mark - 2) {
                slot.1 = index;
            }
        }
        let flow = self.walk(&elem, &b.list)?;
        self.vars.truncate(mark);
        Ok(matches!(flow, Flow::Break))
    }

    fn eval_pipeline(&mut self, dot: &Val<'a>, pipe: &'t Pipe) -> R<Val<'a>> {
        self.at = At::Pipe(pipe);
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value.take())?.unwrap_nil());
        }
        let value = value.unwrap_or(Val::Missing);
        for name in &pipe.decl {
            if !pipe.is_assign {
                self.vars.push((name, value.clone()));
            } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = value.clone();
            } else {
                return Err(self.err(format!("undefined variable: {name}")));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Val<'a>>) -> R<()> {
        match args.first() {
            Some(first) if args.len() > 1 || fin.is_some() => {
                // Go prints a parenthesized pipeline here without parentheses.
                let shown = match first {
                    Arg::Pipe(p) => p.to_string(),
                    other => other.to_string(),
                };
                Err(self.err(format!("can't give argument to non-function {shown}")))
            }
            _ => Ok(()),
        }
    }

    fn eval_command(&mut self, dot: &Val<'a>, cmd: &'t Cmd, fin: Option<Val<'a>>) -> R<Val<'a>> {
        let Some(first) = cmd.args.first() else {
            return Err(self.err("empty command"));
        };
        match first {
            Arg::Field { idents, .. } => {
                self.at = At::Arg(first);
                self.eval_field_chain(dot.clone(), idents, &cmd.args, fin)
            }
            Arg::Chain { .. } => self.eval_chain(dot, first, &cmd.args, fin),
            Arg::Func { name, .. } => {
                self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args[1..], fin)
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Var { .. } => self.eval_variable(first, &cmd.args, fin),
            _ => {
                self.at = At::Arg(first);
                self.not_a_function(&cmd.args, &fin)?;
                match first {
                    Arg::Bool { val, .. } => Ok(Val::own(Value::Bool(*val))),
                    Arg::Dot { .. } => Ok(dot.clone()),
                    Arg::Num { num, .. } => self.ideal_constant(num),
                    Arg::Str { val, .. } => Ok(Val::own(Value::String(val.clone()))),
                    _ => Err(self.err("nil is not a command")),
                }
            }
        }
    }

    fn ideal_constant(&self, num: &Number) -> R<Val<'a>> {
        let v = match (num.float_syntax, num.float, num.int) {
            (true, Some(f), _) => serde_json::Number::from_f64(f).map(Value::Number),
            (_, _, Some(i)) => Some(Value::from(i)),
            _ => None,
        };
        v.map(Val::own)
            .ok_or_else(|| self.err(format!("{} overflows int", num.text)))
    }

    fn eval_chain(
        &mut self,
        dot: &Val<'a>,
        chain: &'t Arg,
        args: &'t [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let Arg::Chain { node, idents, .. } = chain else {
            return Err(self.err("internal error: not a chain"));
        };
        self.at = At::Arg(chain);
        let recv = match &**node {
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Func { name, .. } => {
                self.eval_function(dot, node, name, At::Arg(node), &[], None)?
            }
            other => match self.eval_arg(dot, P::Any, other)? {
                A::V(v) => v,
                A::S(s) => Val::own(Value::String(s)),
                A::I(i) => Val::own(Value::from(i)),
            },
        };
        // Like Go, errors from here on report the last node evaluated above.
        self.eval_field_chain(recv, idents, args, fin)
    }

    fn eval_variable(&mut self, var: &'t Arg, args: &'t [Arg], fin: Option<Val<'a>>) -> R<Val<'a>> {
        let Arg::Var { name, idents, .. } = var else {
            return Err(self.err("internal error: not a variable"));
        };
        self.at = At::Arg(var);
        let Some((_, value)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
            return Err(self.err(format!("undefined variable: {name}")));
        };
        let value = value.clone();
        if idents.is_empty() {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(value, idents, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        mut recv: Val<'a>,
        idents: &[String],
        args: &[Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let Some((last, init)) = idents.split_last() else {
            return Ok(recv);
        };
        for name in init {
            recv = self.eval_field(name, false, recv)?;
        }
        self.eval_field(last, args.len() > 1 || fin.is_some(), recv)
    }

    fn eval_field(&self, name: &str, has_args: bool, recv: Val<'a>) -> R<Val<'a>> {
        let missing_err = self.tmpl.missing_key_error;
        match recv.get() {
            None if missing_err => {
                Err(self.err(format!("nil data; no entry for key {}", gofmt::quote(name))))
            }
            None => Ok(Val::Missing),
            Some(Value::Null) => {
                Err(self.err(format!("nil pointer evaluating interface {{}}.{name}")))
            }
            Some(Value::Object(_)) if has_args => {
                Err(self.err(format!("{name} is not a method but has arguments")))
            }
            Some(Value::Object(_)) => match recv.key(name) {
                Some(v) => Ok(v),
                None if self.is_struct(&recv) => {
                    let typ = self
                        .tmpl
                        .typed
                        .as_ref()
                        .map_or("", |t| t.type_name.as_str());
                    Err(self.err(format!("can't evaluate field {name} in type {typ}")))
                }
                None if missing_err => {
                    Err(self.err(format!("map has no entry for key {}", gofmt::quote(name))))
                }
                None => Ok(Val::Missing),
            },
            Some(v) => {
                // Go names the receiver's static type: interface{} for an
                // element of a decoded map or slice.
                let typ = if recv.is_iface() {
                    "interface {}"
                } else {
                    gofmt::type_name(Some(v))
                };
                Err(self.err(format!("can't evaluate field {name} in type {typ}")))
            }
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val<'a>,
        ident: &'t Arg,
        name: &str,
        node: At<'t>,
        args: &'t [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        self.at = At::Arg(ident);
        let Some(Sig { fixed, variadic }) = funcs::signature(name, self.header) else {
            return Err(self.err(format!("{} is not a defined function", gofmt::quote(name))));
        };
        let num_in = args.len() + usize::from(fin.is_some());
        if variadic.is_some() && num_in < fixed.len() {
            let msg = format!(
                "wrong number of args for {name}: want at least {} got {}",
                fixed.len(),
                args.len()
            );
            return Err(self.err(msg));
        }
        if variadic.is_none() && num_in != fixed.len() {
            return Err(self.err(format!(
                "wrong number of args for {name}: want {} got {num_in}",
                fixed.len()
            )));
        }
        if name == "and" || name == "or" {
            let mut v = Val::Missing;
            for a in args {
                v = match self.eval_arg(dot, P::Any, a)? {
                    A::V(v) => v,
                    _ => Val::Missing,
                };
                if funcs::is_true(&v) == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(fin.unwrap_or(v));
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let p = fixed.get(i).copied().or(variadic).unwrap_or(P::Any);
            argv.push(self.eval_arg(dot, p, a)?);
        }
        if let Some(f) = fin {
            let p = match variadic {
                Some(v) if num_in > fixed.len() => v,
                _ => fixed.get(num_in - 1).copied().unwrap_or(P::Any),
            };
            argv.push(self.validate(f, p)?);
        }
        if name == "json" && !self.header {
            if let [A::V(v)] = argv.as_slice() {
                if self.is_root(v) {
                    let json = super::super::gojson::json_html_escaped(v.get());
                    return Ok(Val::own(Value::String(json)));
                }
            }
        }
        funcs::call(name, self.header, argv).map_err(|msg| {
            self.at = node;
            self.err(format!("error calling {name}: {msg}"))
        })
    }

    fn eval_arg(&mut self, dot: &Val<'a>, p: P, arg: &'t Arg) -> R<A<'a>> {
        self.at = At::Arg(arg);
        let v = match arg {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } if p == P::Any => Val::Missing,
            Arg::Nil { .. } => {
                return Err(self.err(format!("cannot assign nil to {}", p.go_name())))
            }
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot.clone(), idents, std::slice::from_ref(arg), None)?
            }
            Arg::Var { .. } => self.eval_variable(arg, &[], None)?,
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Func { name, .. } => {
                self.eval_function(dot, arg, name, At::Arg(arg), &[], None)?
            }
            Arg::Chain { .. } => self.eval_chain(dot, arg, &[], None)?,
            Arg::Num { num, .. } => match p {
                P::Int => {
                    return num
                        .int
                        .map(A::I)
                        .ok_or_else(|| self.err(format!("expected integer; found {arg}")))
                }
                P::Str => return Err(self.err(format!("expected string; found {arg}"))),
                P::Any => self.ideal_constant(num)?,
            },
            Arg::Str { val, .. } => match p {
                P::Int => return Err(self.err(format!("expected integer; found {arg}"))),
                _ => Val::own(Value::String(val.clone())),
            },
            Arg::Bool { val, .. } => match p {
                P::Int => return Err(self.err(format!("expected integer; found {arg}"))),
                P::Str => return Err(self.err(format!("expected string; found {arg}"))),
                P::Any => Val::own(Value::Bool(*val)),
            },
        };
        self.validate(v, p)
    }

    fn validate(&self, v: Val<'a>, p: P) -> R<A<'a>> {
        match (p, v.get()) {
            (P::Any, _) => Ok(A::V(v)),
            (_, None) => Err(self.err(format!("invalid value; expected {}", p.go_name()))),
            (P::Str, Some(Value::String(s))) => Ok(A::S(s.clone())),
            (P::Int, Some(Value::Number(n))) if n.is_i64() => Ok(A::I(n.as_i64().unwrap_or(0))),
            (_, got) => Err(self.err(format!(
                "wrong type for value; expected {}; got {}",
                p.go_name(),
                gofmt::type_name(got)
            ))),
        }
    }
}
