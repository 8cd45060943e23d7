//! Applying one instruction to the state of a stage, the way docker's classic builder does:
//! metadata instructions change the image config and return the `created_by` line of their
//! history entry; RUN, COPY, ADD and WORKDIR come back as work for the caller (a container,
//! files into the root filesystem), already expanded and resolved.
//!
//! `created_by` strings are docker's byte for byte: `/bin/sh -c #(nop)  CMD ["sh"]` (two
//! spaces for metadata), `/bin/sh -c #(nop) WORKDIR /app` (one), `|2 A=1 B=2 /bin/sh -c ...`
//! for RUN with build args in scope.

use std::collections::{BTreeMap, BTreeSet};

mod work;

pub use work::is_git_source;

use skiff_image::spec::{EmptyObject, Healthcheck, ImageConfig, RunConfig};

use crate::duration::{format_go_duration, parse_go_duration};
use crate::instructions::{parse_arg_words, Flags, InstructionError};
use crate::parser::{Instruction, Keyword};
use crate::shell::{EnvList, Lexer};
use crate::{go_quote, go_quote_rune};

/// docker's default `PATH`, added to a base image that has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args docker accepts without an ARG declaration; kept out of history.
pub const BUILTIN_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What an instruction asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Only the config changed (already applied): a history entry with `empty_layer`.
    Meta { created_by: String },
    /// Run a command in a container on the current root filesystem; its changes are a layer.
    Run(RunStep),
    /// Copy files into the root filesystem; the changes are a layer.
    Copy(CopyStep),
    /// Create the working directory (already set in the config); the changes are a layer.
    Workdir { path: String, created_by: String },
}

/// A RUN, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The command with the shell prepended in shell form.
    pub args: Vec<String>,
    /// The config's env plus the build args in scope (ENV wins).
    pub env: Vec<String>,
    /// `USER` as written (`name`, `uid:gid`), empty for root.
    pub user: String,
    pub workdir: String,
    /// `--network`: `default`, `none` or `host`.
    pub network: String,
    /// The build args in scope that go into the history line and the cache key.
    pub build_args: Vec<String>,
    pub created_by: String,
    /// The shell-form command (for docker's failure message), or the exec args joined.
    pub display: String,
    /// `--mount`s, parsed and expanded.
    pub mounts: Vec<crate::mounts::RunMount>,
}

/// A COPY or ADD, resolved (sources not yet looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    pub add: bool,
    /// Sources as written, expanded.
    pub sources: Vec<String>,
    /// Destination as written, expanded.
    pub dest_written: String,
    /// Absolute destination; ends in `/` when written so (or `.`-like: a directory).
    pub dest: String,
    /// `--from`: a stage name or index, or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    /// `COPY --parents`: sources keep their directories below the context (or below a
    /// `/./` in the source path).
    pub parents: bool,
    /// `/bin/sh -c` (the shell in effect), for the history line.
    pub shell_prefix: String,
    /// `--exclude` patterns (`.dockerignore` syntax), expanded.
    pub excludes: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /file`): name and content.
    pub inline: Vec<(String, String)>,
    /// ADD of http(s) URLs: the sources are these URLs.
    pub remote: bool,
    /// `ADD --keep-git-dir`: keep `.git` in a repository added from git.
    pub keep_git_dir: bool,
    /// `ADD --checksum=sha256:...` of a remote source.
    pub checksum: Option<String>,
}

impl CopyStep {
    /// docker's history line once the sources are hashed (`file:<hex>`, `dir:<hex>`).
    pub fn created_by(&self, source_desc: &str) -> String {
        format!(
            "{} #(nop) {} {} in {} ",
            self.shell_prefix,
            if self.add { "ADD" } else { "COPY" },
            source_desc,
            self.dest_written
        )
    }
}

/// The state of a stage being built: the config and what lives beside it.
#[derive(Debug, Clone)]
pub struct StageState {
    pub config: ImageConfig,
    /// ARGs declared in this stage, in order, with their values.
    args: Vec<(String, Option<String>)>,
    /// Meta args (before the first FROM) a stage ARG may take its value from.
    meta_args: BTreeMap<String, Option<String>>,
    build_args: BTreeMap<String, String>,
    /// Build args some ARG declared (for docker's "not consumed" warning).
    pub consumed: BTreeSet<String>,
    cmd_set: bool,
    lexer: Lexer,
}

impl StageState {
    /// A stage starting from `base` (its config; a fresh one for `scratch`).
    pub fn new(
        mut base: ImageConfig,
        meta_args: &[(String, Option<String>)],
        build_args: &BTreeMap<String, String>,
        escape: char,
    ) -> Self {
        let run = base.config.get_or_insert_with(RunConfig::default);
        let env = run.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        StageState {
            config: base,
            args: Vec::new(),
            meta_args: meta_args.iter().cloned().collect(),
            build_args: build_args.clone(),
            consumed: BTreeSet::new(),
            cmd_set: false,
            lexer: Lexer::new(escape),
        }
    }

    fn run_config(&mut self) -> &mut RunConfig {
        self.config.config.get_or_insert_with(RunConfig::default)
    }

    fn env(&self) -> &[String] {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.as_deref())
            .unwrap_or(&[])
    }

    /// The shell in effect (`SHELL`, default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()])
    }

    fn nop(&self, what: &str) -> String {
        format!("{} #(nop)  {what}", self.shell().join(" "))
    }

    /// Args declared in this stage that have a value, plus builtin args given on the command
    /// line, minus those an ENV overrides: `(name, value, declared)` sorted by name.
    fn args_in_scope(&self) -> Vec<(String, String, bool)> {
        let env_keys: BTreeSet<&str> = self
            .env()
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        let mut out: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for (k, v) in &self.args {
            if let Some(v) = v {
                out.insert(k.clone(), (v.clone(), true));
            }
        }
        for b in BUILTIN_ARGS {
            if let Some(v) = self.build_args.get(b) {
                out.entry(b.to_owned()).or_insert((v.clone(), false));
            }
        }
        out.into_iter()
            .filter(|(k, _)| !env_keys.contains(k.as_str()))
            .map(|(k, (v, d))| (k, v, d))
            .collect()
    }

    /// The variables word expansion sees: build args in scope, then the config's env.
    pub fn expansion_env(&self) -> EnvList {
        let mut list: Vec<String> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        list.extend(self.env().iter().cloned());
        EnvList(list)
    }

    fn expand(&self, ins: &Instruction, word: &str) -> Result<String, InstructionError> {
        self.lexer
            .process_word(word, &self.expansion_env())
            .map(|e| e.result)
            .map_err(|e| InstructionError::new(ins, e.to_string()))
    }

    fn expand_words(&self, ins: &Instruction, word: &str) -> Result<Vec<String>, InstructionError> {
        self.lexer
            .process_words(word, &self.expansion_env())
            .map_err(|e| InstructionError::new(ins, e.to_string()))
    }

    /// Applies `ins` (anything but FROM) and says what the caller must do.
    pub fn dispatch(&mut self, ins: &Instruction) -> Result<Effect, InstructionError> {
        let no_flags = |ins: &Instruction| Flags::parse(ins, &[]);
        match ins.keyword {
            Keyword::From => Err(InstructionError::new(ins, "FROM starts a new stage")),
            Keyword::Run => self.run(ins),
            Keyword::Copy | Keyword::Add => self.copy(ins),
            Keyword::Workdir => {
                no_flags(ins)?;
                let raw = ins.args.first().map(String::as_str).unwrap_or("");
                if raw.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "WORKDIR requires exactly one argument",
                    ));
                }
                let dir = self.expand(ins, raw)?;
                let base = self
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.working_dir.clone())
                    .unwrap_or_default();
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("/{base}/{dir}")
                };
                let path = clean_path(&joined);
                self.run_config().working_dir = Some(path.clone());
                let created_by = format!("{} #(nop) WORKDIR {path}", self.shell().join(" "));
                Ok(Effect::Workdir { path, created_by })
            }
            _ => self.meta(ins).map(|created_by| Effect::Meta { created_by }),
        }
    }

    fn meta(&mut self, ins: &Instruction) -> Result<String, InstructionError> {
        let health_flags = [
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ];
        Flags::parse(
            ins,
            if ins.keyword == Keyword::Healthcheck {
                &health_flags
            } else {
                &[]
            },
        )?;
        match ins.keyword {
            Keyword::Env => {
                if ins.args.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "ENV requires at least one argument",
                    ));
                }
                let mut parts = Vec::new();
                for pair in ins.args.chunks(3) {
                    let key = self.expand(ins, &pair[0])?;
                    let value = self.expand(ins, pair.get(1).map_or("", String::as_str))?;
                    if key.is_empty() {
                        return Err(InstructionError::new(ins, "ENV names can not be blank"));
                    }
                    parts.push(format!("{key}={value}"));
                    let env = self.run_config().env.get_or_insert_with(Vec::new);
                    let entry = format!("{key}={value}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
                    {
                        Some(e) => *e = entry,
                        None => env.push(entry),
                    }
                }
                Ok(self.nop(&format!("ENV {}", parts.join(" "))))
            }
            Keyword::Label => {
                if ins.args.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "LABEL requires at least one argument",
                    ));
                }
                let mut parts = Vec::new();
                for pair in ins.args.chunks(3) {
                    let key = self.expand(ins, &pair[0])?;
                    let value = self.expand(ins, pair.get(1).map_or("", String::as_str))?;
                    if key.is_empty() {
                        return Err(InstructionError::new(ins, "LABEL names can not be blank"));
                    }
                    parts.push(format!("{key}={value}"));
                    self.run_config()
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, value);
                }
                Ok(self.nop(&format!("LABEL {}", parts.join(" "))))
            }
            Keyword::Maintainer => {
                let who = ins.args.first().cloned().unwrap_or_default();
                if who.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "MAINTAINER requires exactly one argument",
                    ));
                }
                self.config.author = Some(who.clone());
                Ok(self.nop(&format!("MAINTAINER {who}")))
            }
            Keyword::Arg => {
                let env = self.expansion_env();
                let mut parts = Vec::new();
                for (name, default) in parse_arg_words(ins, &self.lexer, &env)? {
                    let value = match self.build_args.get(&name) {
                        Some(v) => Some(v.clone()),
                        None => default
                            .clone()
                            .or_else(|| self.meta_args.get(&name).cloned().flatten()),
                    };
                    if self.build_args.contains_key(&name) {
                        self.consumed.insert(name.clone());
                    }
                    parts.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    self.args.retain(|(k, _)| k != &name);
                    self.args.push((name, value));
                }
                Ok(self.nop(&format!("ARG {}", parts.join(" "))))
            }
            Keyword::Cmd => {
                let cmd = self.command_line(ins);
                self.run_config().cmd = Some(cmd.clone());
                self.cmd_set = true;
                Ok(self.nop(&format!("CMD {}", go_quote_list(&cmd))))
            }
            Keyword::Entrypoint => {
                let ep = self.command_line(ins);
                let rc = self.run_config();
                rc.entrypoint = Some(ep.clone());
                if !self.cmd_set {
                    self.run_config().cmd = None;
                }
                Ok(self.nop(&format!("ENTRYPOINT {}", go_quote_list(&ep))))
            }
            Keyword::Expose => {
                if ins.args.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "EXPOSE requires at least one argument",
                    ));
                }
                let mut specs = Vec::new();
                for w in &ins.args {
                    specs.extend(self.expand_words(ins, w)?);
                }
                let ports = self
                    .run_config()
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for spec in &specs {
                    for port in expand_port(spec).map_err(|m| InstructionError::new(ins, m))? {
                        ports.insert(port, EmptyObject {});
                    }
                }
                specs.sort();
                Ok(self.nop(&format!("EXPOSE {}", specs.join(" "))))
            }
            Keyword::Volume => {
                let mut vols = Vec::new();
                for w in &ins.args {
                    if ins.json {
                        vols.push(self.expand(ins, w)?);
                    } else {
                        vols.extend(self.expand_words(ins, w)?);
                    }
                }
                if vols.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "VOLUME requires at least one argument",
                    ));
                }
                let set = self.run_config().volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    let v = v.trim();
                    if v.is_empty() {
                        return Err(InstructionError::new(
                            ins,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    set.insert(v.to_owned(), EmptyObject {});
                }
                Ok(self.nop(&format!("VOLUME [{}]", vols.join(" "))))
            }
            Keyword::User => {
                let raw = ins.args.first().cloned().unwrap_or_default();
                if raw.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "USER requires exactly one argument",
                    ));
                }
                let user = self.expand(ins, &raw)?;
                self.run_config().user = Some(user.clone());
                Ok(self.nop(&format!("USER {user}")))
            }
            Keyword::StopSignal => {
                let raw = ins.args.first().cloned().unwrap_or_default();
                let sig = self.expand(ins, &raw)?;
                if !valid_signal(&sig) {
                    return Err(InstructionError::new(ins, format!("Invalid signal: {sig}")));
                }
                self.run_config().stop_signal = Some(sig.clone());
                Ok(self.nop(&format!("STOPSIGNAL {sig}")))
            }
            Keyword::Shell => {
                if !ins.json {
                    return Err(InstructionError::new(
                        ins,
                        "SHELL requires the arguments to be in JSON form",
                    ));
                }
                if ins.args.is_empty() {
                    return Err(InstructionError::new(
                        ins,
                        "SHELL requires at least one argument",
                    ));
                }
                self.run_config().shell = Some(ins.args.clone());
                Ok(self.nop(&format!("SHELL [{}]", ins.args.join(" "))))
            }
            Keyword::Onbuild => {
                let Some(sub) = ins.onbuild.as_deref() else {
                    return Err(InstructionError::new(
                        ins,
                        "ONBUILD requires at least one argument",
                    ));
                };
                match sub.keyword {
                    Keyword::Onbuild => {
                        return Err(InstructionError::new(
                            ins,
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        ))
                    }
                    Keyword::From | Keyword::Maintainer => {
                        return Err(InstructionError::new(
                            ins,
                            format!(
                                "{} isn't allowed as an ONBUILD trigger",
                                sub.keyword.as_str().to_ascii_uppercase()
                            ),
                        ))
                    }
                    _ => {}
                }
                let expr = onbuild_expression(ins);
                self.run_config()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expr.clone());
                Ok(self.nop(&format!("ONBUILD {expr}")))
            }
            Keyword::Healthcheck => self.healthcheck(ins),
            Keyword::From | Keyword::Run | Keyword::Copy | Keyword::Add | Keyword::Workdir => {
                Err(InstructionError::new(ins, "not a metadata instruction"))
            }
        }
    }

    fn healthcheck(&mut self, ins: &Instruction) -> Result<String, InstructionError> {
        let flags = Flags::parse(
            ins,
            &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
        )?;
        let typ = ins
            .args
            .first()
            .map(|t| t.to_ascii_uppercase())
            .unwrap_or_default();
        let mut hc = Healthcheck::default();
        match typ.as_str() {
            "NONE" => {
                if ins.args.len() > 1 {
                    return Err(InstructionError::new(
                        ins,
                        "HEALTHCHECK NONE takes no arguments",
                    ));
                }
                hc.test = Some(vec!["NONE".to_owned()]);
            }
            "CMD" => {
                let rest = &ins.args[1..];
                if rest.is_empty() || rest.iter().all(String::is_empty) {
                    return Err(InstructionError::new(
                        ins,
                        "Missing command after HEALTHCHECK CMD",
                    ));
                }
                let mut test = vec![if ins.json { "CMD" } else { "CMD-SHELL" }.to_owned()];
                test.extend(rest.iter().cloned());
                hc.test = Some(test);
                let dur = |name: &str| -> Result<Option<i64>, InstructionError> {
                    match flags.get(name) {
                        None | Some("") => Ok(None),
                        Some(v) => {
                            let ns = parse_go_duration(v).ok_or_else(|| {
                                InstructionError::new(
                                    ins,
                                    format!("time: invalid duration {}", go_quote(v)),
                                )
                            })?;
                            if ns != 0 && ns < 1_000_000 {
                                return Err(InstructionError::new(
                                    ins,
                                    format!("Interval {name:?} cannot be less than 1ms"),
                                ));
                            }
                            Ok((ns != 0).then_some(ns))
                        }
                    }
                };
                hc.interval = dur("interval")?;
                hc.timeout = dur("timeout")?;
                hc.start_period = dur("start-period")?;
                hc.start_interval = dur("start-interval")?;
                if let Some(r) = flags.get("retries") {
                    let n: i64 = r.parse().map_err(|_| {
                        InstructionError::new(
                            ins,
                            format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(r)),
                        )
                    })?;
                    if n < 0 {
                        return Err(InstructionError::new(ins, "--retries cannot be negative"));
                    }
                    hc.retries = (n != 0).then_some(n);
                }
            }
            other => {
                return Err(InstructionError::new(
                    ins,
                    format!("Unknown type {:?} in HEALTHCHECK (try CMD)", other),
                ))
            }
        }
        // docker prints the struct with %q: each field quoted, Retries as a rune.
        let test = hc.test.clone().unwrap_or_default();
        let line = format!(
            "HEALTHCHECK &{{{} {} {} {} {}}}",
            go_quote_list(&test),
            go_quote(&format_go_duration(hc.interval.unwrap_or(0))),
            go_quote(&format_go_duration(hc.timeout.unwrap_or(0))),
            go_quote(&format_go_duration(hc.start_period.unwrap_or(0))),
            go_quote_rune(char::from_u32(hc.retries.unwrap_or(0) as u32).unwrap_or('\u{fffd}')),
        );
        self.run_config().healthcheck = Some(hc);
        Ok(self.nop(&line))
    }

    fn command_line(&self, ins: &Instruction) -> Vec<String> {
        if ins.json {
            ins.args.clone()
        } else {
            let mut cmd = self.shell();
            cmd.push(ins.args.first().cloned().unwrap_or_default());
            cmd
        }
    }

    /// Build args given on the command line that no ARG of this stage declared.
    pub fn declared(&self, name: &str) -> bool {
        self.args.iter().any(|(k, _)| k == name)
    }

    /// The config's OnBuild triggers, removed from it (a child runs them once).
    pub fn take_triggers(&mut self) -> Vec<String> {
        self.run_config().on_build.take().unwrap_or_default()
    }
}

/// `ONBUILD RUN echo x` -> `RUN echo x`, as written after the keyword.
fn onbuild_expression(ins: &Instruction) -> String {
    let orig = ins.original.trim_start();
    let rest = orig
        .split_once(char::is_whitespace)
        .map_or("", |(_, r)| r)
        .trim_start();
    rest.to_owned()
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `path.Clean` for absolute paths.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// docker's `normalizeDest`: relative to the working directory, keeping a trailing slash
/// (and treating `.` or a trailing `/.` as a directory).
pub fn normalize_dest(workdir: &str, dest: &str) -> String {
    let is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest == "..";
    let abs = if dest.starts_with('/') {
        clean_path(dest)
    } else {
        clean_path(&format!("/{workdir}/{dest}"))
    };
    if is_dir && abs != "/" {
        format!("{abs}/")
    } else {
        abs
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` -> the port keys docker records.
fn expand_port(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(sig: &str) -> bool {
    if let Ok(n) = sig.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = sig.strip_prefix("SIG").unwrap_or(sig).to_ascii_uppercase();
    const NAMES: [&str; 33] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    NAMES.contains(&name.as_str())
        || name == "XFSZ"
        || name.starts_with("RTMIN")
        || name.starts_with("RTMAX")
}

#[cfg(test)]
mod tests;
