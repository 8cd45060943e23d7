//! Go `encoding/json` encoding of JSON values, as docker's `json` template
//! function produces it (`json.NewEncoder` with `SetEscapeHTML(false)`).

use std::fmt::Write as _;

use serde_json::Value;

use super::gofmt::{digits, fmt_e, Arg};

/// `encoding/json` encoding with `SetEscapeHTML(false)`, as docker's `json`
/// template function does. Object keys keep the order of the value.
pub(crate) fn json(v: Arg<'_>) -> String {
    let mut out = String::new();
    json_into(v.unwrap_or(&Value::Null), &mut out);
    out
}

/// [`json`] with Go's HTML escaping (`<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`), as
/// `json.Marshal` writes them: what docker prints for a list row (`--format json`,
/// `{{json .}}`), whose `MarshalJSON` goes through `json.Marshal`.
pub(crate) fn json_html_escaped(v: Option<&Value>) -> String {
    json(v)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn json_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.is_f64(), n.as_f64()) {
            (true, Some(f)) => out.push_str(&json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                json_into(item, out);
            }
            out.push('}');
        }
    }
}

fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (d, dp) = digits(f, None);
        let mut s = String::new();
        fmt_e(f < 0.0, &d, dp, d.len().saturating_sub(1), &mut s);
        // Go cleans up "e-07" to "e-7".
        if let Some(pos) = s.find("e-0") {
            s.remove(pos + 2);
        }
        s
    } else {
        format!("{f}")
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_matches_go_encoder() {
        let v = json!({"b": "<a&b>", "a": [1, 2.5, 100.0, null, true], "c": "\u{2028}\u{1}\u{8}"});
        assert_eq!(
            json(Some(&v)),
            r#"{"b":"<a&b>","a":[1,2.5,100,null,true],"c":"\u2028\u0001\b"}"#
        );
        assert_eq!(json(None), "null");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1.5e-7), "1.5e-7");
        assert_eq!(json_float(1e20), "100000000000000000000");
    }
}
