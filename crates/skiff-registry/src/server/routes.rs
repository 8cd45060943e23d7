//! Request path -> typed route: a pure function, unit-tested without a socket.
//!
//! Repository names contain slashes, so a path is read from its end: the last segments say
//! what is asked (`blobs/<digest>`, `manifests/<ref>`, ...) and everything before them is the
//! name. A repository called `a/blobs` still parses: `/v2/a/blobs/blobs/sha256:..`.

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v1/search` (docker hub's search API, for `skiff search`)
    Search,
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    Uploads { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/manifests/<tag-or-digest>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
}

/// Parses a request path (without the query). `None` for paths outside the API.
pub fn parse(path: &str) -> Option<Route> {
    if path == "/v1/search" {
        return Some(Route::Search);
    }
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let segs: Vec<String> = rest.split('/').map(percent_decode).collect();
    let n = segs.len();
    let name_of = |end: usize| -> Option<String> {
        if end == 0 {
            None
        } else {
            Some(segs[..end].join("/"))
        }
    };
    let seg = |i: usize| segs.get(i).map(String::as_str);
    if n >= 3 && seg(n - 2) == Some("tags") && seg(n - 1) == Some("list") {
        return Some(Route::Tags {
            name: name_of(n - 2)?,
        });
    }
    if n >= 4 && seg(n - 3) == Some("blobs") && seg(n - 2) == Some("uploads") {
        let name = name_of(n - 3)?;
        let id = segs[n - 1].clone();
        return Some(if id.is_empty() {
            Route::Uploads { name }
        } else {
            Route::Upload { name, id }
        });
    }
    if n >= 3 && seg(n - 2) == Some("blobs") && seg(n - 1) == Some("uploads") {
        // `POST /v2/<name>/blobs/uploads` without the trailing slash, as some clients send it.
        return Some(Route::Uploads {
            name: name_of(n - 2)?,
        });
    }
    if n >= 3 && !segs[n - 1].is_empty() {
        let last = segs[n - 1].clone();
        match seg(n - 2) {
            Some("blobs") => {
                return Some(Route::Blob {
                    name: name_of(n - 2)?,
                    digest: last,
                })
            }
            Some("manifests") => {
                return Some(Route::Manifest {
                    name: name_of(n - 2)?,
                    reference: last,
                })
            }
            Some("referrers") => {
                return Some(Route::Referrers {
                    name: name_of(n - 2)?,
                    digest: last,
                })
            }
            _ => {}
        }
    }
    None
}

/// Whether `name` is a repository name the spec allows:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255
/// characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-", followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// Whether `tag` is a tag the spec allows: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Query parameters, percent-decoded, in order (a key may repeat).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// The first value of a query parameter.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value: everything but unreserved characters is escaped.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn paths_parse_from_the_end() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse("/v1/search"), Some(Route::Search));
        assert_eq!(
            parse("/v2/a/b/blobs/sha256:00"),
            Some(Route::Blob {
                name: s("a/b"),
                digest: s("sha256:00")
            })
        );
        assert_eq!(
            parse("/v2/a/blobs/blobs/sha256%3A00"),
            Some(Route::Blob {
                name: s("a/blobs"),
                digest: s("sha256:00")
            })
        );
        assert_eq!(
            parse("/v2/lib/x/blobs/uploads/"),
            Some(Route::Uploads { name: s("lib/x") })
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads"),
            Some(Route::Uploads { name: s("x") })
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads/abc"),
            Some(Route::Upload {
                name: s("x"),
                id: s("abc")
            })
        );
        assert_eq!(
            parse("/v2/x/manifests/latest"),
            Some(Route::Manifest {
                name: s("x"),
                reference: s("latest")
            })
        );
        assert_eq!(parse("/v2/x/tags/list"), Some(Route::Tags { name: s("x") }));
        assert_eq!(
            parse("/v2/x/referrers/sha256:1"),
            Some(Route::Referrers {
                name: s("x"),
                digest: s("sha256:1")
            })
        );
        assert_eq!(parse("/v2/manifests/latest"), None);
        assert_eq!(parse("/v2/x/manifests/"), None);
        assert_eq!(parse("/other"), None);
    }

    #[test]
    fn names_and_tags_follow_the_spec_grammar() {
        for ok in ["a", "library/busybox", "a.b_c__d-e--f/g0", "x/y/z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a:b", "a_.b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("latest"));
        assert!(valid_tag("_v1.2-rc"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn queries_decode() {
        let q = query_pairs(Some("n=2&last=a%2Fb&artifactType=application%2Fx+y&tag"));
        assert_eq!(query_get(&q, "n"), Some("2"));
        assert_eq!(query_get(&q, "last"), Some("a/b"));
        assert_eq!(query_get(&q, "artifactType"), Some("application/x y"));
        assert_eq!(query_get(&q, "tag"), Some(""));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
