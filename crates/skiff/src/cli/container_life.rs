//! `skiff ps`, `stop`, `restart`, `kill`, `rm`, `wait`, `logs`.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::format::{human_duration, human_size_with_precision, unix_time_utc};
use super::output::{now_secs, print_rows};
use super::GlobalOptions;
use crate::ops::container::kill::parse_signal;
use crate::ops::container::list::{list, PsOptions};
use crate::ops::container::logs::{logs, LogsOptions};
use crate::ops::container::store::{parse_time, Container, State, Status};
use crate::ops::container::ContainerStore;
use crate::ops::engine::Engine;
use crate::ops::error::{PlainError, Reported};

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string", default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for
    /// 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m"
    /// for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

/// Runs `f` for each named container, printing the name on success and docker's message on
/// failure; fails (exit 1) if any failed.
pub(super) fn each(
    g: &GlobalOptions,
    names: &[String],
    mut f: impl FnMut(&Engine, &ContainerStore, &Container) -> Result<()>,
) -> Result<()> {
    each_printing(g, names, |name, engine, store, c| {
        f(engine, store, c).map(|()| name.to_owned())
    })
}

/// Like [`each`], printing what `f` returns (it is given the name as typed) on success.
fn each_printing(
    g: &GlobalOptions,
    names: &[String],
    mut f: impl FnMut(&str, &Engine, &ContainerStore, &Container) -> Result<String>,
) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let mut failed = false;
    for name in names {
        match store.get(name).and_then(|c| f(name, &engine, &store, &c)) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported(anyhow::anyhow!("some containers failed")).into());
    }
    Ok(())
}

pub fn run_stop(g: &GlobalOptions, a: StopArgs, restart: bool) -> Result<()> {
    if let Some(s) = &a.signal {
        parse_signal(s)?;
    }
    each(g, &a.containers, |engine, store, c| {
        crate::ops::container::stop::stop(engine, store, c, a.timeout, a.signal.as_deref())?;
        if restart {
            crate::ops::container::start::start(engine, store, c, false)?;
        }
        Ok(())
    })
}

pub fn run_kill(g: &GlobalOptions, a: KillArgs) -> Result<()> {
    let sig = parse_signal(&a.signal)?;
    each(g, &a.containers, |engine, store, c| {
        crate::ops::container::kill::kill(engine, store, c, sig)
    })
}

pub fn run_rm(g: &GlobalOptions, a: RmArgs) -> Result<()> {
    each(g, &a.containers, |engine, store, c| {
        crate::ops::container::rm::remove(engine, store, c, a.force, a.volumes)
    })
}

pub fn run_wait(g: &GlobalOptions, a: WaitArgs) -> Result<()> {
    each_printing(g, &a.containers, |_, engine, store, c| {
        crate::ops::container::wait::wait(engine, store, c).map(|code| code.to_string())
    })
}

pub fn run_logs(g: &GlobalOptions, a: LogsArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    let now = time::OffsetDateTime::now_utc();
    let time_flag = |v: &Option<String>| -> Result<Option<time::OffsetDateTime>> {
        match v {
            None => Ok(None),
            Some(s) => crate::ops::container::timeparse::parse_time_or_duration(s, now).map(Some).ok_or_else(|| {
                PlainError::invalid(format!(
                    "invalid value for \"since\": failed to parse value as time or duration: \"{s}\""
                ))
                .into()
            }),
        }
    };
    let tail = match a.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(PlainError::invalid(format!(
                    "invalid value for \"tail\": {n:?} is not a number"
                ))
                .into())
            }
        },
    };
    let opts = LogsOptions {
        follow: a.follow,
        tail,
        since: time_flag(&a.since)?,
        until: time_flag(&a.until)?,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let timestamps = a.timestamps;
    let details = a.details;
    let result = logs(&engine, &store, &c, &opts, &mut |e| {
        let mut line = Vec::with_capacity(e.text.len() + 32);
        if timestamps {
            line.extend_from_slice(fixed_nano(e.time).as_bytes());
            line.push(b' ');
        }
        if details {
            // No log attributes are recorded: docker prints an empty details field.
            line.push(b' ');
        }
        line.extend_from_slice(&e.text);
        if e.stream == 2 {
            let mut err = stderr.lock();
            err.write_all(&line)?;
            err.flush()?;
        } else {
            let mut out = stdout.lock();
            out.write_all(&line)?;
            out.flush()?;
        }
        Ok(())
    });
    match result {
        // A closed pipe on our side (`logs | head`) ends the command quietly.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// docker's `RFC3339NanoFixed`: always nine digits of fraction.
fn fixed_nano(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// docker's `State.String()`: `Up 3 seconds`, `Exited (0) 5 seconds ago`, `Created`...
pub fn status_text(s: &State, now: time::OffsetDateTime) -> String {
    let since = |t: &str| -> String {
        let d = parse_time(t).map_or(Duration::ZERO, |t| {
            Duration::try_from(now - t).unwrap_or(Duration::ZERO)
        });
        human_duration(d)
    };
    match s.status {
        Status::Paused => format!("Up {} (Paused)", since(&s.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, since(&s.finished_at)),
        Status::Running => {
            let health = match s.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_owned(),
                Some(h) if !h.is_empty() => format!(" ({h})"),
                _ => String::new(),
            };
            format!("Up {}{health}", since(&s.started_at))
        }
        Status::Removing => "Removal In Progress".to_owned(),
        Status::Dead => "Dead".to_owned(),
        Status::Created => "Created".to_owned(),
        Status::Exited => {
            if parse_time(&s.started_at).is_none() {
                return "Created".to_owned();
            }
            if parse_time(&s.finished_at).is_none() {
                return String::new();
            }
            format!("Exited ({}) {} ago", s.exit_code, since(&s.finished_at))
        }
    }
}

/// Go's `strconv.Quote` for the COMMAND column.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One container as `ps` (and `system df -v`) shows it, with docker's `ContainerContext`
/// fields. `size` is the writable layer and the virtual size, the latter shown only when
/// not zero (docker's `SizeRootFs > 0`); `trunc` shortens ids and the command as a table does.
pub(super) fn ps_row(
    c: &Container,
    state: &State,
    size: Option<(u64, u64)>,
    trunc: bool,
    now: time::OffsetDateTime,
    now_s: i64,
) -> serde_json::Value {
    // The daemon's rule: arguments holding a space are shown in single quotes.
    let mut command = c.path.clone();
    for arg in &c.args {
        command.push(' ');
        if arg.contains(' ') {
            command.push_str(&format!("'{arg}'"));
        } else {
            command.push_str(arg);
        }
    }
    if trunc {
        command = ellipsis(&command, 20);
    }
    let image_hex = c.image.trim_start_matches("sha256:");
    let image = if c.config.image.trim_start_matches("sha256:") == image_hex && trunc {
        image_hex[..12.min(image_hex.len())].to_owned()
    } else {
        c.config.image.clone()
    };
    let created = parse_time(&c.created).map_or(0, |t| t.unix_timestamp());
    let mut labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    let size = size.map_or(String::new(), |(rw, virt)| {
        if virt > 0 {
            format!(
                "{} (virtual {})",
                human_size_with_precision(rw, 3),
                human_size_with_precision(virt, 3)
            )
        } else {
            human_size_with_precision(rw, 3)
        }
    });
    json!({
        "Command": go_quote(&command),
        "CreatedAt": unix_time_utc(created),
        "ID": if trunc { c.short_id().to_owned() } else { c.id.clone() },
        "Image": image,
        "Labels": labels.join(","),
        "LocalVolumes": c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        "Mounts": c.mounts.iter().filter(|m| !m.from_tmpfs_flag).map(|m| {
            let n = m.name.clone().unwrap_or_else(|| m.source.clone());
            if trunc { ellipsis(&n, 15) } else { n }
        }).collect::<Vec<_>>().join(","),
        "Names": c.name,
        "Networks": c.host_config.network_mode,
        "Ports": "",
        "RunningFor": super::format::time_ago(created, now_s),
        "Size": size,
        "State": state.status.as_str(),
        "Status": status_text(state, now),
    })
}

/// The column titles of [`ps_row`]'s fields.
pub(super) fn ps_headers() -> serde_json::Value {
    json!({
        "Command": "COMMAND", "CreatedAt": "CREATED AT", "ID": "CONTAINER ID",
        "Image": "IMAGE", "Labels": "LABELS", "LocalVolumes": "LOCAL VOLUMES",
        "Mounts": "MOUNTS", "Names": "NAMES", "Networks": "NETWORKS", "Ports": "PORTS",
        "RunningFor": "CREATED", "Size": "SIZE", "State": "STATE", "Status": "STATUS",
    })
}

pub fn run_ps(g: &GlobalOptions, a: PsArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let last = if a.latest {
        Some(1)
    } else if a.last > 0 {
        Some(a.last as usize)
    } else {
        None
    };
    let opts = PsOptions {
        all: a.all,
        last,
        filters: a.filter.clone(),
        size: a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")),
    };
    let rows = list(&engine, &store, &opts)?;
    let now = time::OffsetDateTime::now_utc();
    let now_s = now_secs();
    let trunc = !a.no_trunc;
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            // ps shows the virtual size as the writable layer plus the image.
            let size = r.size.map(|(rw, img)| (rw, rw + img));
            ps_row(&r.container, &r.state, size, trunc, now, now_s)
        })
        .collect();
    let headers = ps_headers();
    let table = if a.quiet && a.format.is_none() {
        "{{.ID}}"
    } else if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let format = if a.quiet { None } else { a.format.as_deref() };
    let format = if a.quiet && a.format.is_none() {
        Some("{{.ID}}")
    } else {
        format
    };
    print_rows(
        format,
        table,
        &headers,
        &values,
        "*formatter.ContainerContext",
    )
}
