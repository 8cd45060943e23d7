//! `.dockerignore` with docker's semantics (moby/patternmatcher): one pattern per line, `#`
//! comments, patterns cleaned (`./a/` is `a`, a leading `/` dropped), `*` and `?` within one
//! path component, `**` across components, `[...]` classes, `\` escapes, `!` re-including
//! what an earlier pattern excluded. The last matching pattern wins, and a pattern that
//! matches a parent directory matches everything under it.

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/`.
    Star,
    /// `?`: one non-`/`.
    One,
    /// `**/` (or `**` before more pattern): `(.*/)?`.
    AnyDirs,
    /// `**` at the end: `.*`.
    AnyRest,
    /// `[...]`: (negated, ranges).
    Class(bool, Vec<(char, char)>),
}

impl Ignore {
    /// Parses the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut cleaned = clean_relative(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                exclusion,
                tokens: compile(&cleaned),
            });
        }
        Ignore { patterns }
    }

    /// Whether nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn excludes(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./").trim_matches('/');
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = matches(&p.tokens, path);
            if !m && parents.len() > 1 {
                for i in 1..parents.len() {
                    if matches(&p.tokens, &parents[..i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether some `!` pattern could re-include something under the excluded directory
    /// `dir` (then the walk must descend into it).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// `filepath.Clean` for a relative path (keeps a leading `/`).
fn clean_relative(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

fn compile(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        out.push(Tok::AnyRest);
                    } else {
                        out.push(Tok::AnyDirs);
                    }
                } else {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::One),
            '\\' => {
                if let Some(&n) = chars.get(i) {
                    out.push(Tok::Lit(n));
                    i += 1;
                } else {
                    out.push(Tok::Lit('\\'));
                }
            }
            '[' => {
                let mut j = i;
                let negated = matches!(chars.get(j), Some('^') | Some('!'));
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                while j < chars.len() {
                    let a = chars[j];
                    if a == ']' && (j > i + usize::from(negated)) {
                        closed = true;
                        j += 1;
                        break;
                    }
                    let a = if a == '\\' && j + 1 < chars.len() {
                        j += 1;
                        chars[j]
                    } else {
                        a
                    };
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|c| *c != ']')
                    {
                        ranges.push((a, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((a, a));
                        j += 1;
                    }
                }
                if closed {
                    out.push(Tok::Class(negated, ranges));
                    i = j;
                } else {
                    out.push(Tok::Lit('['));
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

fn matches(tokens: &[Tok], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    match_at(tokens, &chars)
}

fn match_at(tokens: &[Tok], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && match_at(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && match_at(rest, &s[1..]),
        Tok::Class(neg, ranges) => {
            s.first().is_some_and(|c| {
                *c != '/' && (ranges.iter().any(|(a, b)| a <= c && c <= b) != *neg)
            }) && match_at(rest, &s[1..])
        }
        Tok::Star => {
            let mut i = 0;
            loop {
                if match_at(rest, &s[i..]) {
                    return true;
                }
                if i >= s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Tok::AnyRest => true,
        Tok::AnyDirs => {
            // (.*/)? : empty, or any prefix ending in '/'.
            if match_at(rest, s) {
                return true;
            }
            (0..s.len()).any(|i| s[i] == '/' && match_at(rest, &s[i + 1..]))
        }
    }
}

/// Whether one path component `name` matches the glob `pattern` (`*`, `?`, `[...]`, `\`),
/// as Go's `filepath.Match` does for COPY sources.
pub(crate) fn glob_component(pattern: &str, name: &str) -> bool {
    matches(&compile(pattern), name)
}

#[cfg(test)]
mod tests {
    use super::Ignore;

    #[test]
    fn docker_semantics() {
        let ig = Ignore::parse("# c\n*.log\n!keep.log\nbuild/\n**/tmp\ndocs/**/*.md\n/abs\n");
        assert!(ig.excludes("a.log"));
        assert!(!ig.excludes("keep.log"));
        assert!(!ig.excludes("sub/a.log"));
        assert!(ig.excludes("build/x/y"));
        assert!(ig.excludes("tmp"));
        assert!(ig.excludes("a/b/tmp/c"));
        assert!(ig.excludes("docs/a.md"));
        assert!(ig.excludes("docs/x/y/a.md"));
        assert!(!ig.excludes("docs/a.txt"));
        assert!(ig.excludes("abs"));
        let ig = Ignore::parse("*\n!src\nsrc/*.o\n");
        assert!(ig.excludes("Dockerfile"));
        assert!(!ig.excludes("src/a.c"));
        assert!(ig.excludes("src/a.o"));
        let ig = Ignore::parse("[a-c]?.txt\n**\n!x\n");
        assert!(ig.excludes("b1.txt"));
        assert!(!ig.excludes("x"));
    }
}
