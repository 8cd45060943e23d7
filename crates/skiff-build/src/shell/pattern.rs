//! Shell wildcard patterns (`*`, `?`, `\*`, `\?`, `\\`; no bracket expressions) for
//! `${v#pat}`, `${v%pat}` and `${v/pat/rep}`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// Compiles `pattern`; `\}` and `\/` (escaped so as not to end the `${}`) stand for themselves.
fn compile(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => match chars.get(i + 1) {
                Some('}' | '/') => {}
                Some(&c @ ('*' | '?' | '\\')) => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
                Some(c) => return Err(format!("invalid escape '\\{c}'")),
                None => return Err("invalid escape '\\'".to_string()),
            },
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Ok(toks)
}

fn invalid(pattern: &str, err: String) -> String {
    format!("invalid pattern ({pattern}) in substitution: {err}")
}

/// Whether `toks` matches all of `s`.
fn matches(toks: &[Tok], s: &[char]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                p += 1;
                i += 1;
            }
            Some(Tok::Lit(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}

/// `${v#pattern}` (shortest) and `${v##pattern}` (`greedy`, longest): removes a matching prefix.
pub(super) fn trim_prefix(value: &str, pattern: &str, greedy: bool) -> Result<String, String> {
    let toks = compile(pattern).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut ends: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new((0..=n).rev())
    } else {
        Box::new(0..=n)
    };
    Ok(match ends.find(|&end| matches(&toks, &chars[..end])) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%pattern}` (shortest) and `${v%%pattern}` (`greedy`, longest): removes a matching suffix.
pub(super) fn trim_suffix(value: &str, pattern: &str, greedy: bool) -> Result<String, String> {
    let toks = compile(pattern).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let mut starts: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new(0..=n)
    } else {
        Box::new((0..=n).rev())
    };
    Ok(
        match starts.find(|&start| matches(&toks, &chars[start..])) {
            Some(start) => chars[..start].iter().collect(),
            None => value.to_string(),
        },
    )
}

/// `${v/pattern/rep}` (first, leftmost-longest match) and `${v//pattern/rep}` (`all`
/// non-overlapping matches; an empty match right after a match is skipped, as Go's regexp does).
pub(super) fn replace(value: &str, pattern: &str, rep: &str, all: bool) -> Result<String, String> {
    let toks = compile(pattern).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let longest_at = |start: usize| {
        (start..=n)
            .rev()
            .find(|&end| matches(&toks, &chars[start..end]))
    };
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let mut last_end = None;
    let mut replaced = false;
    while i <= n {
        let found = if replaced && !all {
            None
        } else {
            longest_at(i)
        };
        match found {
            Some(end) if !(end == i && last_end == Some(i)) => {
                out.push_str(rep);
                replaced = true;
                last_end = Some(end);
                if end > i {
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        if let Some(c) = chars.get(i) {
            out.push(*c);
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_shortest_and_longest() {
        assert_eq!(trim_prefix("aXbXc", "*X", false).unwrap(), "bXc");
        assert_eq!(trim_prefix("aXbXc", "*X", true).unwrap(), "c");
        assert_eq!(trim_suffix("aXbXc", "X*", false).unwrap(), "aXb");
        assert_eq!(trim_suffix("aXbXc", "X*", true).unwrap(), "a");
        assert_eq!(trim_prefix("abc", "z", false).unwrap(), "abc");
        assert!(trim_prefix("abc", "\\x", false).is_err());
    }

    #[test]
    fn replaces_first_or_all() {
        assert_eq!(replace("a.b.c", ".", "-", false).unwrap(), "a-b.c");
        assert_eq!(replace("a.b.c", ".", "-", true).unwrap(), "a-b-c");
        assert_eq!(replace("abc", "*", "x", true).unwrap(), "x");
        assert_eq!(replace("abc", "", "x", false).unwrap(), "xabc");
    }
}
