//! `skiff buildx history`: the records builds leave behind (`ops::build::history`), with
//! docker buildx's command names so that a docker user knows them: `ls`, `logs`, `inspect`,
//! `rm`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::format::{self, time_ago, Format};
use super::output::{now_secs, to_docker_json};
use super::GlobalOptions;
use crate::ops::build::history::{self, Record};
use crate::ops::error::PlainError;

#[derive(Subcommand, Debug)]
pub enum BuildxCommand {
    /// Commands to work on build records
    #[command(subcommand)]
    History(HistoryCommand),
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// List build records
    Ls(LsArgs),
    /// Print the logs of a build record
    Logs(RefArg),
    /// Inspect a build record
    Inspect(RefArg),
    /// Remove build records
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only display build IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct RefArg {
    /// A build ID or a unique prefix of one, or ^N for the Nth newest but one (default: the
    /// newest build)
    #[arg(value_name = "BUILD-ID")]
    pub build: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove all build records
    #[arg(long)]
    pub all: bool,
    #[arg(value_name = "BUILD-ID")]
    pub builds: Vec<String>,
}

pub fn run(g: &GlobalOptions, c: BuildxCommand) -> Result<()> {
    let root = g.root.as_path();
    match c {
        BuildxCommand::History(HistoryCommand::Ls(a)) => ls(root, &a),
        BuildxCommand::History(HistoryCommand::Logs(a)) => logs(root, a.build.as_deref()),
        BuildxCommand::History(HistoryCommand::Inspect(a)) => inspect(root, a.build.as_deref()),
        BuildxCommand::History(HistoryCommand::Rm(a)) => rm(root, &a),
    }
}

/// buildx's durations: `1.4s` under a minute, `2m 5s` above.
fn duration_text(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m {:2}s", s / 60, s % 60)
    }
}

/// The NAME column: the first tag, else the context's directory name (with the Dockerfile's
/// name when it is not the default), as buildx names a build.
fn build_name(r: &Record) -> String {
    if let Some(t) = r.tags.first() {
        return t.clone();
    }
    let dir = Path::new(&r.context)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.context.clone());
    let file = Path::new(&r.dockerfile).file_name().map_or_else(
        || r.dockerfile.clone(),
        |n| n.to_string_lossy().into_owned(),
    );
    if file == "Dockerfile" {
        dir
    } else {
        format!("{dir}/{file}")
    }
}

/// buildx's `trimBeginning`: the end of a long name, after `..`.
fn trim_beginning(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_owned();
    }
    let tail: String = s.chars().skip(count - (n - 2)).collect();
    format!("..{tail}")
}

fn ls(root: &Path, a: &LsArgs) -> Result<()> {
    let records = history::list(root)?;
    let text = ls_text(&records, a)?;
    quiet_pipe(io::stdout().lock().write_all(text.as_bytes()))
}

fn ls_text(records: &[Record], a: &LsArgs) -> Result<String> {
    let mut text = String::new();
    if a.quiet {
        for r in records {
            text.push_str(&r.id);
            text.push('\n');
        }
        return Ok(text);
    }
    let format = Format::parse(a.format.as_deref().unwrap_or(""))?;
    if matches!(format, Format::Json) {
        // buildx's JSON rows, one per line.
        for r in records {
            let mut row = json!({
                "ref": r.id,
                "name": build_name(r),
                "status": r.status().as_str(),
                "created_at": r.started,
                "total_steps": r.steps.len(),
                "completed_steps": r.steps.iter().filter(|s| s.image.is_some()).count(),
                "cached_steps": r.steps.iter().filter(|s| s.cached).count(),
            });
            if let Some(f) = &r.finished {
                row["completed_at"] = Value::String(f.clone());
            }
            text.push_str(&serde_json::to_string(&row)?);
            text.push('\n');
        }
        return Ok(text);
    }
    let now = now_secs();
    let trunc = !a.no_trunc && format.is_table();
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let name = build_name(r);
            let status = r.status();
            let mut duration = r.duration().map(duration_text).unwrap_or_default();
            if status == history::Status::Running {
                duration.push('+');
            }
            json!({
                "Ref": r.id,
                "Name": if trunc { trim_beginning(&name, 36) } else { name },
                "Status": status.as_str(),
                "CreatedAt": r
                    .started_at()
                    .map(|t| time_ago(t.unix_timestamp(), now))
                    .unwrap_or_default(),
                "Duration": duration,
            })
        })
        .collect();
    let headers = json!({
        "Ref": "BUILD ID",
        "Name": "NAME",
        "Status": "STATUS",
        "CreatedAt": "CREATED AT",
        "Duration": "DURATION",
    });
    Ok(format::render_typed(
        &format,
        "table {{.Ref}}\t{{.Name}}\t{{.Status}}\t{{.CreatedAt}}\t{{.Duration}}",
        &headers,
        &rows,
        Some("*history.lsContext"),
    )?)
}

fn logs(root: &Path, build: Option<&str>) -> Result<()> {
    let r = history::find(root, build)?;
    let path = history::log_path(root, &r.id);
    let mut log =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = io::stdout().lock();
    quiet_pipe(io::copy(&mut log, &mut out).and_then(|_| out.flush()))
}

/// A reader that closed the pipe early (`| head`) is not an error.
fn quiet_pipe(r: io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn inspect(root: &Path, build: Option<&str>) -> Result<()> {
    let r = history::find(root, build)?;
    let mut v = serde_json::to_value(&r)?;
    // What `ls` shows, so that a script needs only this.
    if let Value::Object(m) = &mut v {
        m.insert(
            "status".to_owned(),
            Value::String(r.status().as_str().into()),
        );
        m.insert("name".to_owned(), Value::String(build_name(&r)));
        if let Some(d) = r.duration() {
            m.insert(
                "duration_ms".to_owned(),
                json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            );
        }
    }
    let mut out = io::stdout().lock();
    quiet_pipe(writeln!(out, "{}", to_docker_json(&v)?))
}

fn rm(root: &Path, a: &RmArgs) -> Result<()> {
    if a.all && !a.builds.is_empty() {
        return Err(
            PlainError::invalid("rm requires either --all or at least one argument").into(),
        );
    }
    if a.builds.is_empty() && !a.all {
        return Err(PlainError::invalid("rm requires at least one argument").into());
    }
    if a.all {
        for r in history::list(root)? {
            if r.status() != history::Status::Running {
                history::remove(root, &r.id)?;
            }
        }
        return Ok(());
    }
    // Every record is tried; the first failure is reported after the others went.
    let mut first_err = None;
    for b in &a.builds {
        let removed = history::find(root, Some(b)).and_then(|r| history::remove(root, &r.id));
        if let Err(e) = removed {
            if first_err.is_none() {
                first_err = Some(e);
            } else {
                eprintln!("{e}");
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_long_names_print_as_buildx_prints_them() {
        assert_eq!(duration_text(Duration::from_millis(1430)), "1.4s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2m  5s");
        assert_eq!(trim_beginning("short", 36), "short");
        let long = "a".repeat(30) + "0123456789";
        let t = trim_beginning(&long, 36);
        assert_eq!(t.chars().count(), 36);
        assert!(t.starts_with("..") && t.ends_with("0123456789"));
    }
}
