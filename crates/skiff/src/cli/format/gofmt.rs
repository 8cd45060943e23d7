//! Go `fmt` / `strconv` / `encoding/json` compatible rendering of JSON values.
//!
//! The template engine prints values the way Go's `fmt.Fprint` prints the
//! `interface{}` values obtained by decoding JSON: maps as `map[k:v]` with
//! sorted keys, slices as `[a b]`, nil as `<nil>`. Integers are treated as Go
//! `int` (as docker's typed structs would print them), other numbers as
//! `float64`.

use std::fmt::Write as _;

use serde_json::Value;

/// A printable argument: `None` is Go's untyped `nil`.
pub(crate) type Arg<'a> = Option<&'a Value>;

/// The Go type name of a decoded JSON value, for error messages.
pub(crate) fn type_name(v: Arg<'_>) -> &'static str {
    match v {
        None | Some(Value::Null) => "interface {}",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if n.is_i64() => "int",
        Some(Value::Number(n)) if n.is_u64() => "uint64",
        Some(Value::Number(_)) => "float64",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "[]interface {}",
        Some(Value::Object(_)) => "map[string]interface {}",
    }
}

/// Decimal digits of `f` (no leading/trailing zeros) and the decimal point
/// position, rounded to `sig` significant digits or shortest if `None`.
pub(crate) fn digits(f: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    let s = match sig {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return (d, 0);
    }
    (d, exp + 1)
}

pub(crate) fn fmt_e(neg: bool, d: &[u8], dp: i32, prec: usize, out: &mut String) {
    if neg {
        out.push('-');
    }
    out.push(char::from(d.first().copied().unwrap_or(b'0')));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(d.get(i).copied().unwrap_or(b'0')));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
}

fn fmt_f(neg: bool, d: &[u8], dp: i32, prec: usize, out: &mut String) {
    if neg {
        out.push('-');
    }
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(char::from(d.get(i).copied().unwrap_or(b'0')));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i32 {
            let j = dp + i - 1;
            let c = if j >= 0 {
                d.get(j as usize).copied()
            } else {
                None
            };
            out.push(char::from(c.unwrap_or(b'0')));
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', prec, 64)`; `prec == None` is `-1`.
pub(crate) fn format_g(f: f64, prec: Option<usize>) -> String {
    let neg = f.is_sign_negative() && f != 0.0;
    let (d, dp) = digits(f, prec.map(|p| p.max(1)));
    let nd = d.len() as i32;
    let mut p = prec.map_or(nd, |p| p.max(1) as i32);
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if exp < -4 || exp >= eprec {
        p = p.min(nd);
        fmt_e(neg, &d, dp, (p - 1).max(0) as usize, &mut out);
    } else {
        if p > dp {
            p = nd;
        }
        fmt_f(neg, &d, dp, (p - dp).max(0) as usize, &mut out);
    }
    out
}

/// Go's `%e` with the given precision.
fn format_e(f: f64, prec: usize) -> String {
    let (d, dp) = digits(f, Some(prec + 1));
    let mut out = String::new();
    fmt_e(f.is_sign_negative() && f != 0.0, &d, dp, prec, &mut out);
    out
}

/// Go's `strconv.Quote` (one implementation, shared with the Dockerfile code).
pub(crate) fn quote(s: &str) -> String {
    skiff_build::go_quote(s)
}

/// A parsed `%` directive.
#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

impl Spec {
    fn verb(verb: char) -> Self {
        Spec {
            verb,
            ..Spec::default()
        }
    }

    /// Pads `s` to the width (counted in runes), honouring `-` and `0`.
    fn pad(&self, s: &str, out: &mut String, zero_ok: bool) {
        let n = s.chars().count();
        let w = self.width.unwrap_or(0);
        if n >= w {
            out.push_str(s);
        } else if self.minus {
            out.push_str(s);
            out.extend(std::iter::repeat_n(' ', w - n));
        } else if self.zero && zero_ok {
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'-' | b'+' | b' ') => s.split_at(1),
                _ => ("", s),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', w - n));
            out.push_str(rest);
        } else {
            out.extend(std::iter::repeat_n(' ', w - n));
            out.push_str(s);
        }
    }

    fn sign(&self, neg: bool) -> &'static str {
        match (neg, self.plus, self.space) {
            (true, _, _) => "-",
            (false, true, _) => "+",
            (false, false, true) => " ",
            _ => "",
        }
    }

    fn int(&self, neg: bool, mag: u128, out: &mut String) -> bool {
        let body = match self.verb {
            'd' | 'v' => mag.to_string(),
            'x' => format!("{}{mag:x}", if self.sharp { "0x" } else { "" }),
            'X' => format!("{}{mag:X}", if self.sharp { "0X" } else { "" }),
            'o' => format!("{}{mag:o}", if self.sharp { "0" } else { "" }),
            'b' => format!("{mag:b}"),
            'U' => format!("U+{mag:04X}"),
            'c' | 'q' => {
                let c = u32::try_from(mag)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                let s = if self.verb == 'c' {
                    c.to_string()
                } else {
                    quote_rune(c)
                };
                self.pad(&s, out, false);
                return true;
            }
            _ => return false,
        };
        let body = match self.prec {
            Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
            _ => body,
        };
        self.pad(
            &format!("{}{body}", self.sign(neg)),
            out,
            self.prec.is_none(),
        );
        true
    }

    fn float(&self, f: f64, out: &mut String) -> bool {
        let s = match self.verb {
            'v' | 'g' => format_g(f, self.prec),
            'G' => format_g(f, self.prec).to_uppercase(),
            'f' | 'F' => format!("{:.*}", self.prec.unwrap_or(6), f),
            'e' => format_e(f, self.prec.unwrap_or(6)),
            'E' => format_e(f, self.prec.unwrap_or(6)).to_uppercase(),
            _ => return false,
        };
        let s = match s.strip_prefix('-') {
            Some(rest) => format!("-{rest}"),
            None => format!("{}{s}", self.sign(false)),
        };
        self.pad(&s, out, true);
        true
    }

    fn string(&self, s: &str, out: &mut String) -> bool {
        let s = match self.prec {
            Some(p) => s.chars().take(p).collect::<String>(),
            None => s.to_owned(),
        };
        let body = match self.verb {
            'v' | 's' => s,
            'q' => quote(&s),
            'x' => hex_bytes(&s, false, self.space, self.sharp),
            'X' => hex_bytes(&s, true, self.space, self.sharp),
            _ => return false,
        };
        self.pad(&body, out, true);
        true
    }
}

fn quote_rune(c: char) -> String {
    let q = quote(&c.to_string());
    let inner = &q[1..q.len() - 1];
    match inner {
        "\\\"" => "'\"'".to_owned(),
        _ => format!("'{inner}'"),
    }
}

/// Go's `fmtSbx`: hex bytes, `% x` spaced, `%#x` with `0x` prefixes.
fn hex_bytes(s: &str, upper: bool, spaced: bool, sharp: bool) -> String {
    let prefix = if upper { "0X" } else { "0x" };
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        if spaced && i > 0 {
            out.push(' ');
        }
        if sharp && (i == 0 || spaced) {
            out.push_str(prefix);
        }
        let _ = if upper {
            write!(out, "{b:02X}")
        } else {
            write!(out, "{b:02x}")
        };
    }
    out
}

/// Formats one argument with `spec`, Go style (including `%!v(type=value)`).
fn format_arg(spec: &Spec, arg: Arg<'_>, out: &mut String) {
    match arg {
        None | Some(Value::Null) if !matches!(spec.verb, 'v' | 'T') => {
            let _ = write!(out, "%!{}(<nil>)", spec.verb);
        }
        _ => format_value(spec, arg, out),
    }
}

/// Formats a value, or an element of a slice or map (where nil is `<nil>`).
fn format_value(spec: &Spec, arg: Arg<'_>, out: &mut String) {
    if spec.verb == 'T' {
        spec.pad(
            if matches!(arg, None | Some(Value::Null)) {
                "<nil>"
            } else {
                type_name(arg)
            },
            out,
            false,
        );
        return;
    }
    let ok = match arg {
        None | Some(Value::Null) => {
            spec.pad("<nil>", out, false);
            true
        }
        Some(Value::Bool(b)) => {
            matches!(spec.verb, 'v' | 't') && {
                spec.pad(if *b { "true" } else { "false" }, out, false);
                true
            }
        }
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => spec.int(i < 0, u128::from(i.unsigned_abs()), out),
            (None, Some(u), _) => spec.int(false, u128::from(u), out),
            (_, _, Some(f)) => spec.float(f, out),
            _ => false,
        },
        Some(Value::String(s)) => spec.string(s, out),
        Some(Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_value(spec, Some(item), out);
            }
            out.push(']');
            true
        }
        Some(Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_value(spec, Some(&Value::String(k.clone())), out);
                out.push(':');
                format_value(spec, map.get(k.as_str()), out);
            }
            out.push(']');
            true
        }
    };
    if !ok {
        // Go's badVerb prints the value with %v and the same flags.
        let mut v = String::new();
        format_value(&Spec { verb: 'v', ..*spec }, arg, &mut v);
        let _ = write!(out, "%!{}({}={v})", spec.verb, type_name(arg));
    }
}

/// `fmt.Sprint` of one value (`%v`).
pub(crate) fn to_string(v: Arg<'_>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        _ => {
            let mut out = String::new();
            format_value(&Spec::verb('v'), v, &mut out);
            out
        }
    }
}

/// `fmt.Sprint`: spaces are added between operands when neither is a string.
pub(crate) fn sprint(args: &[Arg<'_>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Some(Value::String(_)));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&to_string(*a));
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: always spaces between operands, and a final newline.
pub(crate) fn sprintln(args: &[Arg<'_>]) -> String {
    let parts: Vec<String> = args.iter().map(|a| to_string(*a)).collect();
    parts.join(" ") + "\n"
}

fn parse_num(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

/// `fmt.Sprintf` for the common verbs (`%v %s %d %q %x %X %t %f %e %g %c %T`).
pub(crate) fn sprintf(format: &str, args: &[Arg<'_>]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = parse_num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(parse_num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        spec.verb = verb;
        if verb == 'v' {
            // %+v and %#v select Go's struct/syntax forms, not flags.
            spec.plus = false;
            spec.sharp = false;
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            Some(arg) => format_arg(&spec, *arg, &mut out),
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
        }
        next_arg += 1;
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                None => out.push_str("<nil>"),
                Some(_) => {
                    let _ = write!(out, "{}={}", type_name(*a), to_string(*a));
                }
            }
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_g_formatting_matches_go() {
        assert_eq!(format_g(1000.0, Some(4)), "1000");
        assert_eq!(format_g(4.261, Some(4)), "4.261");
        assert_eq!(format_g(4.261, Some(3)), "4.26");
        assert_eq!(format_g(1.0, Some(4)), "1");
        assert_eq!(format_g(0.0, Some(4)), "0");
        assert_eq!(format_g(999.95, Some(4)), "1000");
        assert_eq!(format_g(1.0625, Some(4)), "1.062");
        assert_eq!(format_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(format_g(1e6, None), "1e+06");
        assert_eq!(format_g(123456.0, None), "123456");
        assert_eq!(format_g(1234567.0, None), "1.234567e+06");
        assert_eq!(format_g(0.0001, None), "0.0001");
        assert_eq!(format_g(0.00001, None), "1e-05");
        assert_eq!(format_g(-2.5, None), "-2.5");
        assert_eq!(format_g(0.0, None), "0");
    }

    #[test]
    fn prints_composites_like_go() {
        let v = json!({"b": [1, "x", null], "a": {"z": true, "y": 1.5}});
        assert_eq!(
            to_string(Some(&v)),
            "map[a:map[y:1.5 z:true] b:[1 x <nil>]]"
        );
        assert_eq!(to_string(None), "<nil>");
        assert_eq!(to_string(Some(&json!([]))), "[]");
    }

    #[test]
    fn sprint_spacing() {
        let (a, b, s) = (json!(1), json!(2), json!("s"));
        assert_eq!(sprint(&[Some(&a), Some(&b)]), "1 2");
        assert_eq!(sprint(&[Some(&a), Some(&s), Some(&b)]), "1s2");
        assert_eq!(sprint(&[None, None]), "<nil> <nil>");
        assert_eq!(sprintln(&[Some(&s), Some(&s)]), "s s\n");
    }

    #[test]
    fn sprintf_verbs() {
        let (s, i, f, t) = (json!("héllo"), json!(42), json!(2.5), json!(true));
        let args = [Some(&s), Some(&i)];
        assert_eq!(sprintf("%s=%d", &args), "héllo=42");
        assert_eq!(
            sprintf(
                "[%8s|%-6d|%06d]",
                &args[..1]
                    .iter()
                    .chain(&[Some(&i), Some(&i)])
                    .copied()
                    .collect::<Vec<_>>()
            ),
            "[   héllo|42    |000042]"
        );
        assert_eq!(
            sprintf(
                "%q %v %x %X %.2s",
                &[Some(&s), Some(&t), Some(&i), Some(&i), Some(&s)]
            ),
            "\"héllo\" true 2a 2A hé"
        );
        assert_eq!(sprintf("%x", &[Some(&json!("hi"))]), "6869");
        assert_eq!(
            sprintf("%.2f %v %e %g", &[Some(&f), Some(&f), Some(&f), Some(&f)]),
            "2.50 2.5 2.500000e+00 2.5"
        );
        assert_eq!(sprintf("%d", &[Some(&s)]), "%!d(string=héllo)");
        assert_eq!(sprintf("%s", &[Some(&i)]), "%!s(int=42)");
        assert_eq!(sprintf("%s", &[None]), "%!s(<nil>)");
        assert_eq!(sprintf("%d %d", &[Some(&i)]), "42 %!d(MISSING)");
        assert_eq!(
            sprintf("%d", &[Some(&i), Some(&s)]),
            "42%!(EXTRA string=héllo)"
        );
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(
            sprintf("%v|%T", &[Some(&json!(["a", 1])), Some(&i)]),
            "[a 1]|int"
        );
        assert_eq!(sprintf("%q", &[Some(&json!(["a", "b"]))]), "[\"a\" \"b\"]");
        assert_eq!(
            sprintf("%+d %c %q", &[Some(&i), Some(&json!(65)), Some(&json!(65))]),
            "+42 A 'A'"
        );
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote("a\"b\\c\n\t\u{1b}\u{a0}é"),
            "\"a\\\"b\\\\c\\n\\t\\x1b\\u00a0é\""
        );
    }
}
