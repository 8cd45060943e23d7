//! `skiff cp`, `diff`, `export` and `commit`: the commands that work on a container's
//! filesystem.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};

use super::GlobalOptions;
use crate::ops::commit::{commit, CommitOptions};
use crate::ops::cp::{
    copy_from_container, copy_to_container, CopyInSource, CopyOutTarget, CpOptions,
};
use crate::ops::error::PlainError;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "SRC_PATH")]
    pub source: String,
    #[arg(value_name = "DEST_PATH")]
    pub destination: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long, value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, value_name = "bool", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// One side of `cp`: a local path (or `-`), or `CONTAINER:PATH`, split as docker's CLI
/// splits it (a path starting with `/` or `.` is always local).
enum Endpoint<'a> {
    Local(&'a str),
    Container(&'a str, &'a str),
}

fn split_cp_arg(arg: &str) -> Endpoint<'_> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Endpoint::Local(arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => Endpoint::Container(c, if p.is_empty() { "/" } else { p }),
        _ => Endpoint::Local(arg),
    }
}

pub fn run_cp(g: &GlobalOptions, a: CpArgs) -> Result<()> {
    let opts = CpOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    match (split_cp_arg(&a.source), split_cp_arg(&a.destination)) {
        (Endpoint::Local(_), Endpoint::Local(_)) => {
            Err(PlainError::invalid("must specify at least one container source").into())
        }
        (Endpoint::Container(..), Endpoint::Container(..)) => {
            Err(PlainError::invalid("copying between containers is not supported").into())
        }
        (Endpoint::Container(c, src), Endpoint::Local(dest)) => {
            let engine = g.engine()?;
            if dest == "-" {
                let stdout = io::stdout();
                let mut out = stdout.lock();
                copy_from_container(&engine, c, src, CopyOutTarget::Tar(&mut out), opts)?;
                out.flush()?;
                Ok(())
            } else {
                copy_from_container(&engine, c, src, CopyOutTarget::Host(Path::new(dest)), opts)
            }
        }
        (Endpoint::Local(src), Endpoint::Container(c, dest)) => {
            if src != "-" && std::fs::symlink_metadata(src).is_err() {
                let abs = std::path::absolute(src).unwrap_or_else(|_| src.into());
                return Err(PlainError::invalid(format!(
                    "stat {}: no such file or directory",
                    abs.display()
                ))
                .into());
            }
            let engine = g.engine()?;
            if src == "-" {
                let stdin = io::stdin();
                let mut input = stdin.lock();
                copy_to_container(&engine, c, CopyInSource::Tar(&mut input), dest, opts)
            } else {
                copy_to_container(&engine, c, CopyInSource::Host(Path::new(src)), dest, opts)
            }
        }
    }
}

pub fn run_diff(g: &GlobalOptions, a: DiffArgs) -> Result<()> {
    let engine = g.engine()?;
    let changes = crate::ops::container_diff::container_changes(&engine, &a.container)?;
    let mut out = io::stdout().lock();
    for ch in changes {
        writeln!(out, "{} {}", ch.kind.letter(), ch.path)?;
    }
    out.flush()?;
    Ok(())
}

pub fn run_export(g: &GlobalOptions, a: ExportArgs) -> Result<()> {
    match &a.output {
        None => {
            if io::stdout().is_terminal() {
                return Err(PlainError::invalid(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                )
                .into());
            }
            let engine = g.engine()?;
            let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
            crate::ops::export::export(&engine, &a.container, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Some(path) => {
            let path = Path::new(path);
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            // Written beside the target and renamed, as docker's CLI does: a failed export
            // never leaves a truncated file under the name.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| PlainError::invalid(format!("failed to export container: {e}")))?;
            let engine = g.engine()?;
            {
                let mut out = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                crate::ops::export::export(&engine, &a.container, &mut out)?;
                out.flush()?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        }
    }
}

pub fn run_commit(g: &GlobalOptions, a: CommitArgs) -> Result<()> {
    let engine = g.engine()?;
    let id = commit(
        &engine,
        &a.container,
        &CommitOptions {
            author: a.author,
            message: a.message,
            changes: a.change,
            pause: a.pause,
            reference: a.reference,
        },
    )?;
    println!("{id}");
    Ok(())
}
