//! Template functions: Go's `text/template` builtins and docker's additions
//! (`templates.basicFunctions` / `HeaderFunctions`).

use std::fmt::Write as _;

use serde_json::Value;

use super::super::gofmt;
use super::exec::{Val, A};

/// A parameter type, as far as Go's argument conversion distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum P {
    Str,
    Int,
    /// `interface{}` or `reflect.Value`.
    Any,
}

impl P {
    pub(super) fn go_name(self) -> &'static str {
        match self {
            P::Str => "string",
            P::Int => "int",
            P::Any => "interface {}",
        }
    }
}

/// A function signature: fixed parameters and an optional variadic one.
pub(super) struct Sig {
    pub fixed: &'static [P],
    pub variadic: Option<P>,
}

const fn sig(fixed: &'static [P], variadic: Option<P>) -> Option<Sig> {
    Some(Sig { fixed, variadic })
}

/// Whether `name` is a known function (checked at parse time, as Go does).
pub(super) fn is_function(name: &str) -> bool {
    signature(name, false).is_some()
}

/// Docker's functions that become the identity on table headers.
fn header_identity(name: &str) -> bool {
    matches!(
        name,
        "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
    )
}

pub(super) fn signature(name: &str, header: bool) -> Option<Sig> {
    use P::{Any, Int, Str};
    if header && header_identity(name) {
        return match name {
            "split" | "join" => sig(&[Str, Str], None),
            "truncate" => sig(&[Str, Int], None),
            _ => sig(&[Str], None),
        };
    }
    match name {
        "json" | "not" | "len" => sig(&[Any], None),
        "split" => sig(&[Str, Str], None),
        "join" => sig(&[Any, Str], None),
        "title" | "lower" | "upper" => sig(&[Str], None),
        "pad" => sig(&[Str, Int, Int], None),
        "truncate" => sig(&[Str, Int], None),
        "and" | "or" | "index" | "slice" | "eq" => sig(&[Any], Some(Any)),
        "ne" | "lt" | "le" | "gt" | "ge" => sig(&[Any, Any], None),
        "print" | "println" | "html" | "js" | "urlquery" => sig(&[], Some(Any)),
        "printf" => sig(&[Str], Some(Any)),
        _ => None,
    }
}

/// Go's `isTrue`: the zero value, empty collections and nil are false.
pub(super) fn is_true(v: &Val<'_>) -> bool {
    match v.get() {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn text<'a>(s: impl Into<String>) -> Val<'a> {
    Val::own(Value::String(s.into()))
}

fn boolean<'a>(b: bool) -> Val<'a> {
    Val::own(Value::Bool(b))
}

fn str_at<'b>(args: &'b [A<'_>], i: usize) -> &'b str {
    match args.get(i) {
        Some(A::S(s)) => s,
        _ => "",
    }
}

fn int_at(args: &[A<'_>], i: usize) -> i64 {
    match args.get(i) {
        Some(A::I(n)) => *n,
        _ => 0,
    }
}

fn val_at<'a>(args: &[A<'a>], i: usize) -> Val<'a> {
    match args.get(i) {
        Some(A::V(v)) => v.clone(),
        Some(A::S(s)) => text(s.clone()),
        Some(A::I(n)) => Val::own(Value::from(*n)),
        None => Val::Missing,
    }
}

/// Calls function `name` with converted arguments; `Err` is the Go error text.
pub(super) fn call<'a>(name: &str, header: bool, args: Vec<A<'a>>) -> Result<Val<'a>, String> {
    if header && header_identity(name) {
        return Ok(text(str_at(&args, 0)));
    }
    let s0 = str_at(&args, 0);
    let v0 = val_at(&args, 0);
    let v1 = val_at(&args, 1);
    let rest: Vec<Val<'a>> = (1..args.len()).map(|i| val_at(&args, i)).collect();
    let all: Vec<Val<'a>> = (0..args.len()).map(|i| val_at(&args, i)).collect();
    let plain: Vec<Option<&Value>> = all.iter().map(Val::get).collect();
    Ok(match name {
        "json" => text(super::super::gojson::json(v0.get())),
        "split" => {
            let sep = str_at(&args, 1);
            let parts: Vec<Value> = if sep.is_empty() {
                s0.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s0.split(sep).map(|p| Value::String(p.to_owned())).collect()
            };
            Val::own(Value::Array(parts))
        }
        "join" => text(join(v0.get(), str_at(&args, 1))?),
        "title" => text(title(s0)),
        "lower" => text(s0.chars().map(go_lower).collect::<String>()),
        "upper" => text(s0.chars().map(go_upper).collect::<String>()),
        "pad" => {
            let (pre, post) = (int_at(&args, 1), int_at(&args, 2));
            if s0.is_empty() {
                text("")
            } else if pre < 0 || post < 0 {
                return Err("strings: negative Repeat count".to_owned());
            } else {
                text(format!(
                    "{}{s0}{}",
                    " ".repeat(pre as usize),
                    " ".repeat(post as usize)
                ))
            }
        }
        "truncate" => {
            let n = int_at(&args, 1);
            if (s0.len() as i64) < n {
                text(s0)
            } else if n < 0 {
                return Err(format!("runtime error: slice bounds out of range [:{n}]"));
            } else {
                let mut end = n as usize;
                while !s0.is_char_boundary(end) {
                    end -= 1;
                }
                text(&s0[..end])
            }
        }
        "not" => boolean(!is_true(&v0)),
        "len" => match v0.get() {
            None => return Err("reflect: call of reflect.Value.Type on zero Value".to_owned()),
            Some(Value::Null) => return Err("len of nil pointer".to_owned()),
            Some(Value::String(s)) => Val::own(Value::from(s.len())),
            Some(Value::Array(a)) => Val::own(Value::from(a.len())),
            Some(Value::Object(m)) => Val::own(Value::from(m.len())),
            Some(v) => return Err(format!("len of type {}", gofmt::type_name(Some(v)))),
        },
        "index" => index(v0, &rest)?,
        "slice" => slice(v0, &rest)?,
        "print" => text(gofmt::sprint(&plain)),
        "println" => text(gofmt::sprintln(&plain)),
        "printf" => text(gofmt::sprintf(s0, plain.get(1..).unwrap_or_default())),
        "html" => text(html_escape(&eval_args(&plain))),
        "js" => text(js_escape(&eval_args(&plain))),
        "urlquery" => text(query_escape(&eval_args(&plain))),
        "eq" => {
            if rest.is_empty() {
                return Err("missing argument for comparison".to_owned());
            }
            let mut truth = false;
            for r in &rest {
                if eq(v0.get(), r.get())? {
                    truth = true;
                    break;
                }
            }
            boolean(truth)
        }
        "ne" => boolean(!eq(v0.get(), v1.get())?),
        "lt" => boolean(lt(v0.get(), v1.get())?),
        "le" => boolean(lt(v0.get(), v1.get())? || eq(v0.get(), v1.get())?),
        "gt" => boolean(!(lt(v0.get(), v1.get())? || eq(v0.get(), v1.get())?)),
        "ge" => boolean(!lt(v0.get(), v1.get())?),
        // `and`/`or` are evaluated lazily by the executor and never get here.
        _ => return Err(format!("{} is not a defined function", gofmt::quote(name))),
    })
}

/// docker's `joinElements`.
fn join(elems: Option<&Value>, sep: &str) -> Result<String, String> {
    match elems {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .map(|v| gofmt::to_string(Some(v)))
            .collect::<Vec<_>>()
            .join(sep)),
        Some(Value::Object(m)) => {
            let mut out: Vec<String> = m.values().map(|v| gofmt::to_string(Some(v))).collect();
            out.sort();
            Ok(out.join(sep))
        }
        Some(v) => Err(format!("expected slice, got {}", gofmt::type_name(Some(v)))),
    }
}

/// Go's `unicode.ToUpper` (simple case mapping, one rune for one rune).
fn go_upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `unicode.ToLower` (simple case mapping: `İ` becomes `i`).
fn go_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Go's `unicode.ToTitle`: upper case, except for the Latin digraphs.
fn go_title(c: char) -> char {
    match c {
        '\u{1c4}'..='\u{1c6}' => '\u{1c5}',
        '\u{1c7}'..='\u{1c9}' => '\u{1c8}',
        '\u{1ca}'..='\u{1cc}' => '\u{1cb}',
        '\u{1f1}'..='\u{1f3}' => '\u{1f2}',
        c => go_upper(c),
    }
}

/// Go's deprecated `strings.Title`: title-cases the first letter of words.
fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphabetic() || c.is_numeric()) && c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_sep(prev) { go_title(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

fn index_arg(ix: &Val<'_>, len: usize, slicing: bool) -> Result<usize, String> {
    match ix.get() {
        Some(Value::Number(n)) if n.is_i64() => {
            let x = n.as_i64().unwrap_or(-1);
            match usize::try_from(x) {
                Ok(u) if u < len || (slicing && u == len) => Ok(u),
                _ => Err(format!("index out of range: {x}")),
            }
        }
        None | Some(Value::Null) => Err("cannot index slice/array with nil".to_owned()),
        Some(v) => Err(format!(
            "cannot index slice/array with type {}",
            gofmt::type_name(Some(v))
        )),
    }
}

/// Go's `index`: `index x 1 "k"` is `x[1]["k"]`.
fn index<'a>(mut item: Val<'a>, indexes: &[Val<'a>]) -> Result<Val<'a>, String> {
    if matches!(item.get(), None | Some(Value::Null)) {
        return Err("index of untyped nil".to_owned());
    }
    for ix in indexes {
        item = match item.get() {
            None | Some(Value::Null) => return Err("index of nil pointer".to_owned()),
            Some(Value::Array(a)) => {
                let x = index_arg(ix, a.len(), false)?;
                item.index(x).unwrap_or(Val::Missing)
            }
            Some(Value::String(s)) => {
                let x = index_arg(ix, s.len(), false)?;
                Val::own(Value::from(s.as_bytes()[x]))
            }
            Some(Value::Object(_)) => {
                let key = match ix.get() {
                    None | Some(Value::Null) => {
                        return Err("value is nil; should be of type string".to_owned())
                    }
                    Some(Value::String(k)) => k.as_str(),
                    Some(v) => {
                        return Err(format!(
                            "value has type {}; should be string",
                            gofmt::type_name(Some(v))
                        ))
                    }
                };
                item.key(key).unwrap_or_else(Val::nil_iface)
            }
            Some(v) => {
                return Err(format!(
                    "can't index item of type {}",
                    gofmt::type_name(Some(v))
                ))
            }
        };
    }
    Ok(item)
}

/// Go's `slice`: `slice x 1 2` is `x[1:2]`.
fn slice<'a>(item: Val<'a>, indexes: &[Val<'a>]) -> Result<Val<'a>, String> {
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item.get() {
        None | Some(Value::Null) => return Err("slice of untyped nil".to_owned()),
        Some(Value::String(_)) if indexes.len() == 3 => {
            return Err("cannot 3-index slice a string".to_owned())
        }
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(a)) => a.len(),
        Some(v) => {
            return Err(format!(
                "can't slice item of type {}",
                gofmt::type_name(Some(v))
            ))
        }
    };
    let mut idx = [0, len, len];
    for (i, ix) in indexes.iter().enumerate() {
        idx[i] = index_arg(ix, len, true)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item.get() {
        Some(Value::String(s)) => {
            text(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Some(Value::Array(a)) => Val::own(Value::Array(a[idx[0]..idx[1]].to_vec())),
        _ => Val::Missing,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum K {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
}

fn kind(v: Option<&Value>) -> K {
    match v {
        None | Some(Value::Null) => K::Invalid,
        Some(Value::Bool(_)) => K::Bool,
        Some(Value::Number(n)) if n.is_i64() => K::Int,
        Some(Value::Number(n)) if n.is_u64() => K::Uint,
        Some(Value::Number(_)) => K::Float,
        Some(Value::String(_)) => K::Str,
        Some(_) => K::Other,
    }
}

fn num(v: Option<&Value>) -> (i64, u64, f64) {
    match v {
        Some(Value::Number(n)) => (
            n.as_i64().unwrap_or(0),
            n.as_u64().unwrap_or(0),
            n.as_f64().unwrap_or(0.0),
        ),
        _ => (0, 0, 0.0),
    }
}

/// Go's `eq` for one pair.
fn eq(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    let ((ai, au, af), (bi, bu, bf)) = (num(a), num(b));
    Ok(match (k1, k2) {
        (K::Int, K::Uint) => ai >= 0 && ai as u64 == bu,
        (K::Uint, K::Int) => bi >= 0 && au == bi as u64,
        _ if k1 != k2 => {
            if k1 != K::Invalid && k2 != K::Invalid {
                return Err("incompatible types for comparison".to_owned());
            }
            false
        }
        (K::Bool, _) | (K::Str, _) => a == b,
        (K::Int, _) => ai == bi,
        (K::Uint, _) => au == bu,
        (K::Float, _) => af == bf,
        (K::Invalid, _) => true,
        (K::Other, _) => {
            let shown = gofmt::to_string(b);
            return Err(format!(
                "non-comparable type {shown}: {}",
                gofmt::type_name(b)
            ));
        }
    })
}

/// Go's `lt`.
fn lt(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    if matches!(k1, K::Invalid | K::Other) || matches!(k2, K::Invalid | K::Other) {
        return Err("invalid type for comparison".to_owned());
    }
    let ((ai, au, af), (bi, bu, bf)) = (num(a), num(b));
    Ok(match (k1, k2) {
        (K::Int, K::Uint) => ai < 0 || (ai as u64) < bu,
        (K::Uint, K::Int) => bi >= 0 && au < bi as u64,
        _ if k1 != k2 => return Err("incompatible types for comparison".to_owned()),
        (K::Bool, _) => return Err("invalid type for comparison".to_owned()),
        (K::Int, _) => ai < bi,
        (K::Uint, _) => au < bu,
        (K::Float, _) => af < bf,
        _ => match (a, b) {
            (Some(Value::String(x)), Some(Value::String(y))) => x < y,
            _ => false,
        },
    })
}

/// Go's `evalArgs` for html/js/urlquery: like `fmt.Sprint`, with nil
/// arguments shown as `<no value>`.
fn eval_args(args: &[Option<&Value>]) -> String {
    if let [Some(Value::String(s))] = args {
        return s.clone();
    }
    let no_value = Value::String("<no value>".to_owned());
    let shown: Vec<Option<&Value>> = args
        .iter()
        .map(|a| {
            if matches!(a, None | Some(Value::Null)) {
                Some(&no_value)
            } else {
                *a
            }
        })
        .collect();
    gofmt::sprint(&shown)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) < 0x20 || c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_title_and_escapes() {
        assert_eq!(title("hello wORLD foo_bar x-y"), "Hello WORLD Foo_bar X-Y");
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(js_escape("a'b\"<c>\n"), "a\\'b\\\"\\u003Cc\\u003E\\u000A");
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn comparisons_follow_go_kinds() {
        let (one, two, s, f) = (json!(1), json!(2), json!("a"), json!(1.5));
        assert_eq!(eq(Some(&one), Some(&one)), Ok(true));
        assert_eq!(eq(None, Some(&s)), Ok(false));
        assert_eq!(eq(None, None), Ok(true));
        assert_eq!(
            eq(Some(&one), Some(&f)),
            Err("incompatible types for comparison".to_owned())
        );
        assert_eq!(lt(Some(&one), Some(&two)), Ok(true));
        assert_eq!(lt(Some(&s), Some(&json!("b"))), Ok(true));
        assert_eq!(
            lt(None, Some(&one)),
            Err("invalid type for comparison".to_owned())
        );
        assert!(eq(Some(&json!([1])), Some(&json!([1]))).is_err());
    }

    #[test]
    fn join_like_docker() {
        assert_eq!(
            join(Some(&json!(["a", 1, null])), ","),
            Ok("a,1,<nil>".to_owned())
        );
        assert_eq!(
            join(Some(&json!({"x": "b", "y": "a"})), " "),
            Ok("a b".to_owned())
        );
        assert_eq!(join(None, ","), Ok(String::new()));
        assert_eq!(
            join(Some(&json!("s")), ","),
            Err("expected slice, got string".to_owned())
        );
    }
}
