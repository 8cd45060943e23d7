//! `skiff volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use super::format::{human_size, Template};
use super::output::{confirm, print_rows, report_errors, InspectOutput};
use super::GlobalOptions;
use crate::ops::error::{kind_of, ErrorKind};
use crate::ops::volume::list::{list_volumes, VolumeFilters};
use crate::ops::volume::store::{self, CreateOptions};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local", value_name = "string")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opts: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string", hide = true)]
    pub name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. 'dangling=true')
    #[arg(short, long = "filter", value_name = "filter", value_parser = super::images::filter_arg)]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'label=<label>')
    #[arg(long = "filter", value_name = "filter", value_parser = super::images::filter_arg)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(g: &GlobalOptions, cmd: VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Create(a) => run_create(g, a),
        VolumeCommand::Ls(a) => run_ls(g, a),
        VolumeCommand::Inspect(a) => run_inspect(g, a),
        VolumeCommand::Rm(a) => run_rm(g, a),
        VolumeCommand::Prune(a) => run_prune(g, a),
    }
}

/// `KEY=VALUE` list flags as docker reads them (a bare `KEY` is `KEY=`).
fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

fn run_create(g: &GlobalOptions, a: CreateArgs) -> Result<()> {
    if let (Some(flag), Some(arg)) = (&a.name_flag, &a.name) {
        if flag != arg {
            return Err(crate::ops::error::PlainError::invalid(
                "conflicting options: either specify --name or provide positional arg, not both",
            )
            .into());
        }
    }
    let engine = g.engine()?;
    let v = store::create(
        &engine,
        &CreateOptions {
            name: a.name.or(a.name_flag),
            driver: Some(a.driver),
            labels: key_values(&a.labels),
            options: key_values(&a.opts),
        },
    )?;
    println!("{}", v.name);
    Ok(())
}

fn run_ls(g: &GlobalOptions, a: LsArgs) -> Result<()> {
    let filters = VolumeFilters::parse_ls(&a.filter)?;
    let engine = g.engine()?;
    let volumes = list_volumes(&engine, &filters)?;
    let rows: Vec<serde_json::Value> = volumes
        .iter()
        .map(|v| {
            let labels: Vec<String> = v.labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
            json!({
                "Availability": "N/A",
                "Driver": v.driver,
                "Group": "N/A",
                "Labels": labels.join(","),
                "Links": "N/A",
                "Mountpoint": v.mountpoint.to_string_lossy(),
                "Name": v.name,
                "Scope": v.scope,
                "Size": "N/A",
                "Status": "N/A",
            })
        })
        .collect();
    let headers = json!({
        "Availability": "AVAILABILITY", "Driver": "DRIVER", "Group": "GROUP", "Labels": "LABELS",
        "Links": "LINKS", "Mountpoint": "MOUNTPOINT", "Name": "VOLUME NAME", "Scope": "SCOPE",
        "Size": "SIZE", "Status": "STATUS",
    });
    let table = if a.quiet {
        "{{.Name}}"
    } else {
        "table {{.Driver}}\t{{.Name}}"
    };
    let format = match (&a.format, a.quiet) {
        (Some(f), _) => Some(f.as_str()),
        (None, true) => Some(table),
        (None, false) => None,
    };
    print_rows(format, table, &headers, &rows, "*formatter.volumeContext")
}

fn run_inspect(g: &GlobalOptions, a: InspectArgs) -> Result<()> {
    let engine = g.engine()?;
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let mut output = InspectOutput::new(template.as_ref());
    for name in &a.names {
        match store::get(&engine, name) {
            Ok(v) => output.add(serde_json::to_value(&v)?, |t, doc| t.execute(doc)),
            Err(e) if kind_of(&e) == ErrorKind::NotFound => {
                output.error(format!("Error response from daemon: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    output.finish()
}

fn run_rm(g: &GlobalOptions, a: RmArgs) -> Result<()> {
    let engine = g.engine()?;
    let mut errors = Vec::new();
    for name in &a.names {
        match store::remove(&engine, name, a.force) {
            Ok(()) => println!("{name}"),
            Err(e) => match kind_of(&e) {
                ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::InvalidArgument => {
                    errors.push(format!("Error response from daemon: {e}"))
                }
                _ => return Err(e),
            },
        }
    }
    report_errors(errors)
}

fn run_prune(g: &GlobalOptions, a: PruneArgs) -> Result<()> {
    let filters = VolumeFilters::parse_prune(&a.filter)?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let engine = g.engine()?;
    let pruned = store::prune(&engine, |v| !filters.labels_match(v))?;
    if !pruned.names.is_empty() {
        println!("Deleted Volumes:");
        for n in &pruned.names {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(())
}
