//! `--change` / `-c` instructions (import, commit): a Dockerfile instruction applied to an
//! image's run config.

use std::collections::BTreeMap;

use skiff_image::spec::{EmptyObject, Healthcheck, RunConfig};

use super::error::OpError;

/// The instructions `--change` accepts, as docker lists them.
const ALLOWED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Applies one `--change` line to `config`.
pub fn apply_change(config: &mut RunConfig, line: &str) -> Result<(), OpError> {
    apply_changes(config, &[line.to_owned()])
}

/// Applies the `--change` lines to `config` as docker does: the lines form a small
/// Dockerfile (blank lines and comments are skipped), every instruction is checked before any
/// is applied, and a CMD given in the same changes survives a later ENTRYPOINT.
pub fn apply_changes(config: &mut RunConfig, lines: &[String]) -> Result<(), OpError> {
    let instructions: Vec<&str> = lines
        .iter()
        .flat_map(|l| l.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if instructions.is_empty() {
        if lines.is_empty() {
            return Ok(());
        }
        return Err(OpError::invalid("file with no instructions"));
    }
    for line in &instructions {
        let word = line.split(char::is_whitespace).next().unwrap_or(line);
        if !ALLOWED.contains(&word.to_ascii_uppercase().as_str()) {
            // docker's parser lowercases the instruction it names here.
            return Err(OpError::invalid(format!(
                "{} is not a valid change command",
                word.to_lowercase()
            )));
        }
    }
    let mut cmd_set = false;
    for line in instructions {
        apply_one(config, line, &mut cmd_set)?;
    }
    Ok(())
}

fn apply_one(config: &mut RunConfig, line: &str, cmd_set: &mut bool) -> Result<(), OpError> {
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let instruction = word.to_ascii_uppercase();
    let rest = rest.trim();
    if rest.is_empty() {
        match instruction.as_str() {
            "CMD" | "ENTRYPOINT" => {}
            "USER" | "WORKDIR" | "STOPSIGNAL" => {
                return Err(OpError::invalid(format!(
                    "{instruction} requires exactly one argument"
                )))
            }
            _ => {
                return Err(OpError::invalid(format!(
                    "{instruction} requires at least one argument"
                )))
            }
        }
    }
    match instruction.as_str() {
        "CMD" => {
            config.cmd = Some(command_form(rest));
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            config.entrypoint = Some(command_form(rest));
            // docker: ENTRYPOINT resets a CMD inherited from the base image, but not one set
            // by the same changes.
            if !*cmd_set {
                config.cmd = None;
            }
        }
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest, "ENV")? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in rest.split_whitespace() {
                ports.insert(exposed_port(p)?, EmptyObject {});
            }
        }
        "VOLUME" => {
            let vols = config.volumes.get_or_insert_with(BTreeMap::new);
            let list = json_array(rest)
                .unwrap_or_else(|| rest.split_whitespace().map(str::to_owned).collect());
            for v in list {
                if v.is_empty() {
                    return Err(OpError::invalid(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                vols.insert(v, EmptyObject {});
            }
        }
        "WORKDIR" => {
            let current = config.working_dir.clone().unwrap_or_default();
            config.working_dir = Some(normalize_workdir(&current, rest));
        }
        "USER" => config.user = Some(rest.to_owned()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_owned()),
        "ONBUILD" => {
            let (inner, _) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let inner = inner.to_ascii_uppercase();
            match inner.as_str() {
                "ONBUILD" => {
                    return Err(OpError::invalid(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(OpError::invalid(format!(
                        "{inner} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_owned());
        }
        "HEALTHCHECK" => config.healthcheck = Some(healthcheck(rest)?),
        _ => {
            return Err(OpError::invalid(format!(
                "{} is not a valid change command",
                word.to_lowercase()
            )))
        }
    }
    Ok(())
}

/// docker's `normalizeWorkdir`: a relative WORKDIR is joined to the current one (or `/`),
/// and the result is cleaned.
fn normalize_workdir(current: &str, requested: &str) -> String {
    let joined = if requested.starts_with('/') {
        requested.to_owned()
    } else {
        format!("/{current}/{requested}")
    };
    skiff_build::dispatch::clean_path(&joined)
}

/// One EXPOSE argument as docker's `nat.ParsePortSpecs` reads it: `80`, `80/udp`,
/// `8000-8010/tcp`.
fn exposed_port(p: &str) -> Result<String, OpError> {
    let (num, proto) = match p.split_once('/') {
        Some((n, proto)) => (n, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(OpError::invalid(format!("Invalid proto: {proto}")));
    }
    let bad = || OpError::invalid(format!("Invalid containerPort: {num}"));
    let (start, end) = num.split_once('-').unwrap_or((num, num));
    let start: u16 = start.parse().map_err(|_| bad())?;
    let end: u16 = end.parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(format!("{num}/{proto}"))
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Exec form when the argument is a JSON string array, shell form (`/bin/sh -c`) otherwise.
fn command_form(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
}

/// `k=v k2="v 2"` pairs, or the legacy `KEY value with spaces` form.
fn key_values(rest: &str, instruction: &str) -> Result<Vec<(String, String)>, OpError> {
    let words = split_words(rest);
    if words.first().is_some_and(|w| !w.contains('=')) {
        // Legacy form: the first word is the key, the rest of the line the value.
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if v.trim().is_empty() {
            return Err(OpError::invalid(format!(
                "{instruction} must have two arguments"
            )));
        }
        return Ok(vec![(unquote(k), unquote(v.trim()))]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(OpError::invalid(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            )));
        };
        if k.is_empty() {
            return Err(OpError::invalid(format!(
                "{instruction} names can not be blank"
            )));
        }
        out.push((unquote(k), unquote(v)));
    }
    Ok(out)
}

/// Splits on whitespace outside quotes, keeping the quotes for `unquote`.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (_, '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (_, c) => out.push(c),
        }
    }
    out
}

fn healthcheck(rest: &str) -> Result<Healthcheck, OpError> {
    let mut hc = Healthcheck::default();
    let mut words = rest.split_whitespace().peekable();
    let mut consumed = 0usize;
    while let Some(w) = words.peek() {
        let Some(flag) = w.strip_prefix("--") else {
            break;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if !matches!(
            name,
            "interval" | "timeout" | "start-period" | "start-interval" | "retries"
        ) {
            return Err(OpError::invalid(format!("Unknown flag: {name}")));
        }
        let value =
            value.ok_or_else(|| OpError::invalid(format!("Missing a value on flag: {name}")))?;
        match name {
            "interval" => hc.interval = interval(name, value)?,
            "timeout" => hc.timeout = interval(name, value)?,
            "start-period" => hc.start_period = interval(name, value)?,
            "start-interval" => hc.start_interval = interval(name, value)?,
            _ => {
                let retries: i64 = value.parse().map_err(|_| {
                    OpError::invalid(format!(
                        "strconv.ParseInt: parsing {value:?}: invalid syntax"
                    ))
                })?;
                if retries < 0 {
                    return Err(OpError::invalid(format!(
                        "--retries cannot be negative ({retries})"
                    )));
                }
                hc.retries = Some(retries);
            }
        }
        consumed += w.len() + 1;
        words.next();
    }
    let tail = rest.get(consumed..).unwrap_or("").trim();
    let (kind, args) = tail.split_once(char::is_whitespace).unwrap_or((tail, ""));
    match kind.to_ascii_uppercase().as_str() {
        "NONE" if args.trim().is_empty() => hc.test = Some(vec!["NONE".into()]),
        "NONE" => return Err(OpError::invalid("HEALTHCHECK NONE takes no arguments")),
        "CMD" => {
            let args = args.trim();
            let mut test = vec![];
            match json_array(args) {
                Some(list) => {
                    test.push("CMD".to_owned());
                    test.extend(list);
                }
                None => {
                    test.push("CMD-SHELL".to_owned());
                    test.push(args.to_owned());
                }
            }
            hc.test = Some(test);
        }
        other => {
            return Err(OpError::invalid(format!(
                "Unknown type {other:?} in HEALTHCHECK (try CMD)"
            )))
        }
    }
    Ok(hc)
}

/// A HEALTHCHECK duration flag as buildkit's `parseOptInterval` reads it: empty or zero means
/// unset, anything else must be at least 1ms.
fn interval(name: &str, value: &str) -> Result<Option<i64>, OpError> {
    if value.is_empty() {
        return Ok(None);
    }
    let d = duration_nanos(value)?;
    if d == 0 {
        return Ok(None);
    }
    if d < 1_000_000 {
        return Err(OpError::invalid(format!(
            "Interval {name:?} cannot be less than 1ms"
        )));
    }
    Ok(Some(d))
}

/// Parses a Go duration ("30s", "1m30s", "500ms", "1h") into nanoseconds.
pub fn duration_nanos(s: &str) -> Result<i64, OpError> {
    let bad = || OpError::invalid(format!("time: invalid duration \"{s}\""));
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> RunConfig {
        let mut c = RunConfig::default();
        for l in lines {
            apply_change(&mut c, l).unwrap();
        }
        c
    }

    #[test]
    fn cmd_exec_and_shell_forms() {
        assert_eq!(apply(&[r#"CMD ["sh"]"#]).cmd.unwrap(), vec!["sh"]);
        assert_eq!(
            apply(&["CMD echo hi"]).cmd.unwrap(),
            vec!["/bin/sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn env_replaces_and_appends() {
        let c = apply(&["ENV A=1 B=\"two words\"", "ENV A 3"]);
        assert_eq!(c.env.unwrap(), vec!["B=two words", "A=3"]);
    }

    #[test]
    fn expose_defaults_to_tcp() {
        let c = apply(&["EXPOSE 80 53/udp"]);
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp"]);
    }

    #[test]
    fn healthcheck_with_options() {
        let c = apply(&["HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/"]);
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.interval, Some(5_000_000_000));
        assert_eq!(hc.retries, Some(3));
        assert_eq!(hc.test.unwrap(), vec!["CMD-SHELL", "curl -f http://x/"]);
    }

    #[test]
    fn unknown_instruction_is_refused() {
        let err = apply_change(&mut RunConfig::default(), "RUN true").unwrap_err();
        assert_eq!(err.message, "run is not a valid change command");
    }

    #[test]
    fn cmd_from_the_same_changes_survives_entrypoint() {
        let mut c = RunConfig {
            cmd: Some(vec!["base".into()]),
            ..Default::default()
        };
        apply_changes(&mut c, &[r#"ENTRYPOINT ["/bin/sh"]"#.into()]).unwrap();
        assert_eq!(c.cmd, None, "an inherited CMD is reset");
        apply_changes(
            &mut c,
            &["CMD a".into(), r#"ENTRYPOINT ["/bin/sh"]"#.into()],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "a"]);
    }

    #[test]
    fn workdir_is_absolute_and_clean() {
        assert_eq!(
            apply(&["WORKDIR rel", "WORKDIR sub"]).working_dir.unwrap(),
            "/rel/sub"
        );
        assert_eq!(apply(&["WORKDIR /a/b/../c/"]).working_dir.unwrap(), "/a/c");
        assert_eq!(
            apply(&["WORKDIR /x", "WORKDIR ../y"]).working_dir.unwrap(),
            "/y"
        );
    }

    #[test]
    fn label_keys_are_unquoted() {
        let c = apply(&[r#"LABEL "x y"=z a='b c'"#]);
        let labels = c.labels.unwrap();
        assert_eq!(labels.get("x y").map(String::as_str), Some("z"));
        assert_eq!(labels.get("a").map(String::as_str), Some("b c"));
    }

    #[test]
    fn errors_use_dockers_words() {
        let err = |line: &str| {
            apply_change(&mut RunConfig::default(), line)
                .unwrap_err()
                .message
        };
        assert_eq!(err("ENV A"), "ENV must have two arguments");
        assert_eq!(err("USER"), "USER requires exactly one argument");
        assert_eq!(err("EXPOSE 80/xyz"), "Invalid proto: xyz");
        assert_eq!(err("EXPOSE 9-1"), "Invalid containerPort: 9-1");
        assert_eq!(err(""), "file with no instructions");
        assert_eq!(
            err("HEALTHCHECK --interval CMD x"),
            "Missing a value on flag: interval"
        );
        assert_eq!(
            err("HEALTHCHECK --timeout=10us CMD x"),
            "Interval \"timeout\" cannot be less than 1ms"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(duration_nanos("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_nanos("500ms").unwrap(), 500_000_000);
        assert!(duration_nanos("5x").is_err());
    }
}
