//! `RUN --mount=...`: the CSV value parsed and validated into a [`RunMount`], with
//! BuildKit's defaults and its error wording (`unsupported mount type "x"`,
//! `unexpected key 'k' in 'k=v'`), so that a Dockerfile written for `docker build` is
//! accepted or refused the same way. The engine side (cache directories, binds, secrets)
//! lives in the binary's `ops/build/mounts.rs`.

use crate::dispatch::clean_path;

/// What a `--mount` provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// A directory or file of the context, a stage or an image (default).
    Bind,
    /// A directory that persists across builds, keyed by its id.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A `--secret` given to the build, as a file or an environment variable.
    Secret,
    /// An SSH agent socket (parsed as BuildKit does; skiff does not forward agents).
    Ssh,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }

    fn parse(s: &str) -> Option<MountKind> {
        Some(match s {
            "bind" => MountKind::Bind,
            "cache" => MountKind::Cache,
            "tmpfs" => MountKind::Tmpfs,
            "secret" => MountKind::Secret,
            "ssh" => MountKind::Ssh,
            _ => return None,
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sharing {
    #[default]
    Shared,
    /// BuildKit gives a busy cache's user a fresh directory; skiff waits, as for `locked`.
    Private,
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One `--mount` of a RUN, expanded, validated and with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    /// Absolute and clean (relative targets are joined to the working directory). `None`
    /// only for a secret given as an environment variable alone.
    pub target: Option<String>,
    /// Path inside `from` (or the context, or the cache), relative and clean; `""` is its
    /// root.
    pub source: String,
    /// A stage name or index, or an image.
    pub from: Option<String>,
    pub readonly: bool,
    /// The cache's id (default: the target as written) or the secret's id.
    pub id: String,
    pub sharing: Sharing,
    /// Permission bits of a cache directory or secret file.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs `size=`, in bytes.
    pub size: Option<u64>,
    /// A secret that must be given (else it is left out quietly).
    pub required: bool,
    /// For a secret: the environment variable that receives it.
    pub env: Option<String>,
}

impl RunMount {
    /// The normalized spec for the step's cache key: every field, in a fixed order (secret
    /// values are never part of it; the id and target are).
    pub fn key(&self) -> String {
        let RunMount {
            kind,
            target,
            source,
            from,
            readonly,
            id,
            sharing,
            mode,
            uid,
            gid,
            size,
            required,
            env,
        } = self;
        let opt = |v: &Option<u32>, octal: bool| match v {
            Some(v) if octal => format!("{v:o}"),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        format!(
            "type={},target={},source={},from={},ro={},id={},sharing={},mode={},uid={},gid={},size={},required={},env={}",
            kind.as_str(),
            target.as_deref().unwrap_or(""),
            source,
            from.as_deref().unwrap_or(""),
            readonly,
            id,
            sharing.as_str(),
            opt(mode, true),
            opt(uid, false),
            opt(gid, false),
            size.map(|s| s.to_string()).unwrap_or_default(),
            required,
            env.as_deref().unwrap_or(""),
        )
    }
}

/// Why a `--mount` was refused; the message is BuildKit's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, MountError> {
    Err(MountError(msg.into()))
}

/// Parses one `--mount` value. `expand` expands build args and env in each value (as
/// BuildKit does); `workdir` anchors relative targets.
pub fn parse_mount(
    value: &str,
    workdir: &str,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<RunMount, MountError> {
    let fields =
        csv_fields(value).map_err(|e| MountError(format!("failed to parse csv mounts: {e}")))?;
    let mut kind = MountKind::Bind;
    let mut ro: Option<bool> = None;
    let mut required = false;
    let (mut from, mut source, mut target, mut id) = (None, None, None, None);
    let mut sharing = None;
    let (mut mode, mut uid, mut gid, mut size, mut env) = (None, None, None, None, None);
    for field in &fields {
        let Some((key, raw)) = field.split_once('=') else {
            match field.to_ascii_lowercase().as_str() {
                "readonly" | "ro" => ro = Some(true),
                "readwrite" | "rw" => ro = Some(false),
                "required" if matches!(kind, MountKind::Secret | MountKind::Ssh) => required = true,
                k @ "required" => {
                    return fail(format!(
                        "unexpected key '{k}' for mount type '{}'",
                        kind.as_str()
                    ))
                }
                _ => return fail(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_ascii_lowercase();
        let v = expand(raw).map_err(MountError)?;
        let bad_value = || MountError(format!("invalid value for {key}: {v}"));
        match key.as_str() {
            "type" => {
                kind = MountKind::parse(&v.to_ascii_lowercase()).ok_or_else(|| {
                    MountError(suggest(
                        format!("unsupported mount type {}", crate::go_quote(&v)),
                        &v.to_ascii_lowercase(),
                        &["bind", "cache", "tmpfs", "secret", "ssh"],
                    ))
                })?
            }
            "from" => from = Some(v),
            "source" | "src" => source = Some(v),
            "target" | "dst" | "destination" => target = Some(v),
            "readonly" | "ro" => ro = Some(parse_bool(&v).ok_or_else(bad_value)?),
            "readwrite" | "rw" => ro = Some(!parse_bool(&v).ok_or_else(bad_value)?),
            "required" => {
                if !matches!(kind, MountKind::Secret | MountKind::Ssh) {
                    return fail(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        kind.as_str()
                    ));
                }
                required = parse_bool(&v).ok_or_else(bad_value)?;
            }
            "size" => {
                if kind != MountKind::Tmpfs {
                    return fail(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        kind.as_str()
                    ));
                }
                size = Some(ram_in_bytes(&v).ok_or_else(bad_value)?);
            }
            "id" => id = Some(v),
            "sharing" => {
                sharing = Some(match v.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => {
                        return fail(suggest(
                            format!("unsupported sharing value {}", crate::go_quote(&v)),
                            other,
                            &["shared", "private", "locked"],
                        ))
                    }
                })
            }
            "mode" => {
                mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| MountError(format!("invalid value {v} for mode")))?,
                )
            }
            "uid" => {
                uid = Some(
                    v.parse::<u32>()
                        .map_err(|_| MountError(format!("invalid value {v} for uid")))?,
                )
            }
            "gid" => {
                gid = Some(
                    v.parse::<u32>()
                        .map_err(|_| MountError(format!("invalid value {v} for gid")))?,
                )
            }
            "env" => {
                if kind != MountKind::Secret {
                    return fail(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        kind.as_str()
                    ));
                }
                env = Some(v);
            }
            _ => {
                return fail(suggest(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &[
                        "type",
                        "from",
                        "source",
                        "target",
                        "readonly",
                        "id",
                        "sharing",
                        "required",
                        "size",
                        "mode",
                        "uid",
                        "gid",
                        "src",
                        "dst",
                        "destination",
                        "ro",
                        "rw",
                        "readwrite",
                        "env",
                    ],
                ))
            }
        }
    }

    // BuildKit's validateMount, in its order.
    let file_info_allowed = matches!(kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache);
    if !file_info_allowed {
        let q = crate::go_quote(kind.as_str());
        if mode.is_some() {
            return fail(format!("mode not allowed for {q} type mounts"));
        }
        if uid.is_some() {
            return fail(format!("uid not allowed for {q} type mounts"));
        }
        if gid.is_some() {
            return fail(format!("gid not allowed for {q} type mounts"));
        }
    }
    let readonly = ro.unwrap_or(!matches!(kind, MountKind::Cache | MountKind::Tmpfs));
    if kind == MountKind::Secret {
        if from.is_some() {
            return fail("secret mount should not have a from");
        }
        if sharing.is_some() {
            return fail("secret mount should not define sharing");
        }
        if source.is_none() && target.is_none() && id.is_none() {
            return fail("invalid secret mount. one of source, target required");
        }
        if source.is_some() && id.is_some() {
            return fail("both source and id can't be set");
        }
    }
    if sharing.is_some() && kind != MountKind::Cache {
        return fail(format!(
            "invalid cache sharing set for {} mount",
            kind.as_str()
        ));
    }
    if kind == MountKind::Ssh {
        return fail("RUN --mount=type=ssh is not supported by skiff: it forwards no SSH agent");
    }

    let anchor = |t: &str| {
        if t.starts_with('/') {
            clean_path(t)
        } else {
            clean_path(&format!("/{workdir}/{t}"))
        }
    };
    let mut mount = RunMount {
        kind,
        target: None,
        source: String::new(),
        from: None,
        readonly,
        id: String::new(),
        sharing: sharing.unwrap_or_default(),
        mode,
        uid,
        gid,
        size,
        required,
        env: None,
    };
    if kind == MountKind::Secret {
        // convert_secrets.go: the id is `source`, else `id`, else the target's base name;
        // the default target is /run/secrets/<id> unless the secret goes to an env var.
        let secret_id = match (source, id) {
            (Some(s), _) | (None, Some(s)) if !s.is_empty() => s,
            _ => match &target {
                Some(t) if !t.is_empty() => base_name(t),
                _ => return fail("one of source, target required"),
            },
        };
        mount.target = match target.filter(|t| !t.is_empty()) {
            Some(t) => Some(anchor(&t)),
            None if env.is_some() => None,
            None => Some(format!("/run/secrets/{}", base_name(&secret_id))),
        };
        if mount.target.as_deref() == Some("/") {
            return fail("invalid mount target \"/\"");
        }
        mount.id = secret_id;
        mount.env = env.filter(|e| !e.is_empty());
        return Ok(mount);
    }
    let written_target = target.unwrap_or_default();
    let abs = anchor(&written_target);
    if abs == "/" {
        return fail("invalid mount target \"/\"");
    }
    mount.target = Some(abs);
    mount.source = clean_path(&format!("/{}", source.unwrap_or_default()))
        .trim_start_matches('/')
        .to_owned();
    mount.from = from.filter(|f| !f.is_empty());
    if kind == MountKind::Cache {
        mount.id = id
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| written_target.clone());
    } else if kind == MountKind::Tmpfs {
        // A tmpfs has no source; BuildKit ignores one.
        mount.source.clear();
        mount.from = None;
    }
    Ok(mount)
}

/// The `from=` of a `--mount` value, without expansion (which stages a RUN needs).
pub fn mount_from(value: &str) -> Option<String> {
    let fields = csv_fields(value).ok()?;
    let mut from = None;
    let mut tmpfs = false;
    for f in fields {
        if let Some((k, v)) = f.split_once('=') {
            match k.to_ascii_lowercase().as_str() {
                "from" if !v.is_empty() => from = Some(v.to_owned()),
                "type" => tmpfs = v.eq_ignore_ascii_case("tmpfs"),
                _ => {}
            }
        }
    }
    from.filter(|_| !tmpfs)
}

fn base_name(p: &str) -> String {
    let c = clean_path(&format!("/{p}"));
    c.rsplit('/').next().unwrap_or("").to_owned()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// go-units' `RAMInBytes`: `64m`, `1.5g`, `512kb`, `100` (bytes); binary multiples.
fn ram_in_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mul: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mul as f64) as u64)
}

/// BuildKit's `suggest.WrapError`: ` (did you mean x?)` when an option is close.
fn suggest(msg: String, value: &str, options: &[&str]) -> String {
    let limit = (value.chars().count() / 3).max(1);
    let best = options
        .iter()
        .map(|o| (levenshtein(value, o), *o))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, o)) => format!("{msg} (did you mean {o}?)"),
        None => msg,
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One CSV record as Go's `encoding/csv` reads it: `,`-separated, `"..."` quoting with
/// `""` for a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut col = 0;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            col += 1;
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            col + 1
                        ))
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        col += 2;
                        field.push('"');
                    }
                    Some('"') => {
                        col += 1;
                        break;
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {
                    col += 1;
                    out.push(field);
                    continue;
                }
                Some(_) => {
                    return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col + 1
                ))
                }
            }
        }
        loop {
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {
                    col += 1;
                    out.push(field);
                    break;
                }
                Some('"') => {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        col + 1
                    ))
                }
                Some(c) => {
                    col += 1;
                    field.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<RunMount, MountError> {
        parse_with(v, "/work")
    }

    fn parse_with(v: &str, wd: &str) -> Result<RunMount, MountError> {
        parse_mount(v, wd, &|s| Ok(s.replace("$T", "/expanded")))
    }

    fn err(v: &str) -> String {
        parse(v).unwrap_err().0
    }

    #[test]
    fn bind_is_the_default_type_and_read_only() {
        let m = parse("target=/src").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.readonly);
        assert_eq!(m.target.as_deref(), Some("/src"));
        assert_eq!(m.source, "");
        assert_eq!(m.from, None);
        let m = parse("type=bind,src=./a/../b,dst=rel,from=build,rw").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.source, "b");
        assert_eq!(m.target.as_deref(), Some("/work/rel"));
        assert_eq!(m.from.as_deref(), Some("build"));
        assert!(!parse("target=/x,readwrite=true").unwrap().readonly);
        assert!(parse("target=/x,rw=false").unwrap().readonly);
    }

    #[test]
    fn cache_defaults_id_to_target_and_is_writable() {
        let m = parse("type=cache,target=/root/.cache").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert!(!m.readonly);
        assert_eq!(m.id, "/root/.cache");
        assert_eq!(m.sharing, Sharing::Shared);
        let m = parse("type=CACHE,id=go,target=c,sharing=Locked,mode=0700,uid=1000,gid=5").unwrap();
        assert_eq!(m.id, "go");
        assert_eq!(m.target.as_deref(), Some("/work/c"));
        assert_eq!(m.sharing, Sharing::Locked);
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o700), Some(1000), Some(5)));
    }

    #[test]
    fn tmpfs_takes_a_size() {
        let m = parse("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.kind, MountKind::Tmpfs);
        assert!(!m.readonly);
        assert_eq!(m.size, Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(
            err("type=tmpfs,target=/t,size=lots"),
            "invalid value for size: lots"
        );
        assert_eq!(
            err("type=bind,target=/t,size=1m"),
            "unexpected key 'size' for mount type 'bind'"
        );
    }

    #[test]
    fn secrets_take_their_id_from_source_id_or_target() {
        let m = parse("type=secret,id=tok").unwrap();
        assert_eq!(m.id, "tok");
        assert_eq!(m.target.as_deref(), Some("/run/secrets/tok"));
        assert!(m.readonly);
        assert!(!m.required);
        let m = parse("type=secret,target=/etc/pass.txt,required").unwrap();
        assert_eq!(m.id, "pass.txt");
        assert!(m.required);
        let m = parse("type=secret,src=aws,dst=/a,required=true,mode=0440,uid=1").unwrap();
        assert_eq!((m.id.as_str(), m.target.as_deref()), ("aws", Some("/a")));
        assert_eq!((m.mode, m.uid), (Some(0o440), Some(1)));
        let m = parse("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(m.target, None);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = parse("type=secret,id=tok,env=TOKEN,target=/t").unwrap();
        assert_eq!(m.target.as_deref(), Some("/t"));
    }

    #[test]
    fn buildkit_errors_are_kept_word_for_word() {
        assert_eq!(err("type=foo,target=/x"), "unsupported mount type \"foo\"");
        assert_eq!(
            err("type=cach,target=/x"),
            "unsupported mount type \"cach\" (did you mean cache?)"
        );
        assert_eq!(
            err("target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            err("target=/x,targte=1"),
            "unexpected key 'targte' in 'targte=1' (did you mean target?)"
        );
        assert_eq!(
            err("target=/x,what"),
            "invalid field 'what' must be a key=value pair"
        );
        assert_eq!(
            err("target=/x,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            err("required,type=secret,id=a"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(err("target=/x,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            err("target=/x,mode=0644"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            err("type=tmpfs,target=/x,uid=1"),
            "uid not allowed for \"tmpfs\" type mounts"
        );
        assert_eq!(
            err("type=cache,target=/x,mode=9"),
            "invalid value 9 for mode"
        );
        assert_eq!(
            err("type=cache,target=/x,sharing=bogus"),
            "unsupported sharing value \"bogus\""
        );
        assert_eq!(
            err("target=/x,sharing=locked"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            err("type=secret,id=a,from=x"),
            "secret mount should not have a from"
        );
        assert_eq!(
            err("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("type=secret,id=a,src=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            err("type=cache,target=/x,env=A"),
            "unexpected key 'env' for mount type 'cache'"
        );
        assert_eq!(
            parse_with("type=cache", "/").unwrap_err().0,
            "invalid mount target \"/\""
        );
        assert!(err("type=ssh").contains("not supported by skiff"));
    }

    #[test]
    fn values_are_expanded_and_csv_quoted() {
        let m = parse("type=cache,target=$T").unwrap();
        assert_eq!(m.target.as_deref(), Some("/expanded"));
        let m = parse("\"type=bind\",\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert!(err("target=/a\"b").starts_with("failed to parse csv mounts: "));
        assert_eq!(csv_fields("a,,\"x\"\"y\"").unwrap(), ["a", "", "x\"y"]);
    }

    #[test]
    fn the_key_names_every_field_but_no_secret_value() {
        let a = parse("type=cache,target=/c").unwrap();
        let b = parse("type=cache,target=/c,sharing=locked").unwrap();
        assert_ne!(a.key(), b.key());
        assert_eq!(
            a.key(),
            "type=cache,target=/c,source=,from=,ro=false,id=/c,sharing=shared,mode=,uid=,gid=,size=,required=false,env="
        );
    }

    #[test]
    fn from_is_found_without_expansion() {
        assert_eq!(
            mount_from("type=bind,from=build,target=/b").as_deref(),
            Some("build")
        );
        assert_eq!(mount_from("type=cache,target=/b"), None);
        assert_eq!(mount_from("type=tmpfs,from=x,target=/b"), None);
    }
}
