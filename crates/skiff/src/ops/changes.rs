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
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let instruction = word.to_ascii_uppercase();
    let rest = rest.trim();
    if !ALLOWED.contains(&instruction.as_str()) {
        return Err(OpError::invalid(format!(
            "{instruction} is not a valid change command"
        )));
    }
    let missing = || OpError::invalid(format!("{instruction} requires at least one argument"));
    if rest.is_empty() && instruction != "CMD" && instruction != "ENTRYPOINT" {
        return Err(missing());
    }
    match instruction.as_str() {
        "CMD" => config.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => {
            config.entrypoint = Some(command_form(rest));
            // docker: setting ENTRYPOINT resets a CMD inherited from the base image.
            config.cmd = None;
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
                let port = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                let (num, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                if num.split('-').any(|n| n.parse::<u16>().is_err())
                    || !matches!(proto, "tcp" | "udp" | "sctp")
                {
                    return Err(OpError::invalid(format!("invalid containerPort: {p}")));
                }
                ports.insert(port, EmptyObject {});
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
            let dir = rest.to_owned();
            config.working_dir = Some(match &config.working_dir {
                Some(base) if !dir.starts_with('/') => {
                    format!("{}/{dir}", base.trim_end_matches('/'))
                }
                _ => dir,
            });
        }
        "USER" => config.user = Some(rest.to_owned()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_owned()),
        "ONBUILD" => {
            let (inner, _) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let inner = inner.to_ascii_uppercase();
            if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(OpError::invalid(format!(
                    "{inner} isn't allowed as an ONBUILD trigger"
                )));
            }
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_owned());
        }
        "HEALTHCHECK" => config.healthcheck = Some(healthcheck(rest)?),
        _ => unreachable!("filtered by ALLOWED"),
    }
    Ok(())
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
        if v.trim().is_empty() && instruction == "ENV" {
            return Err(OpError::invalid("ENV names can not be blank"));
        }
        return Ok(vec![(k.to_owned(), unquote(v.trim()))]);
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
        out.push((k.to_owned(), unquote(v)));
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
        let (name, value) = flag
            .split_once('=')
            .ok_or_else(|| OpError::invalid(format!("HEALTHCHECK: missing value for --{flag}")))?;
        match name {
            "interval" => hc.interval = Some(duration_nanos(value)?),
            "timeout" => hc.timeout = Some(duration_nanos(value)?),
            "start-period" => hc.start_period = Some(duration_nanos(value)?),
            "start-interval" => hc.start_interval = Some(duration_nanos(value)?),
            "retries" => {
                hc.retries = Some(value.parse().map_err(|_| {
                    OpError::invalid(format!("HEALTHCHECK: invalid --retries value {value:?}"))
                })?)
            }
            other => return Err(OpError::invalid(format!("Unknown flag: {other}"))),
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
        assert_eq!(err.message, "RUN is not a valid change command");
    }

    #[test]
    fn go_durations() {
        assert_eq!(duration_nanos("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_nanos("500ms").unwrap(), 500_000_000);
        assert!(duration_nanos("5x").is_err());
    }
}
