//! `skiff images` / `skiff image ls`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::format::{human_size, human_size_with_precision, time_ago};
use super::output::{go_time_string, now_secs, print_rows};
use super::GlobalOptions;
use crate::ops::list::{list_images, Filters, ListOptions};

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter", value_parser = filter_arg)]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// A `-f` value must be `name=value`; docker refuses anything else as a flag error (exit 125).
pub fn filter_arg(s: &str) -> Result<String, String> {
    if s.contains('=') {
        Ok(s.to_owned())
    } else {
        Err("bad format of filter (expected name=value)".to_owned())
    }
}

pub fn run(g: &GlobalOptions, a: ImagesArgs) -> Result<()> {
    let engine = g.engine()?;
    let opts = ListOptions {
        all: a.all,
        reference: a.reference.clone(),
        filters: Filters::parse(&a.filter)?,
    };
    let rows = list_images(&engine, &opts)?;
    let now = now_secs();
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let id = if a.no_trunc {
                r.image.id.to_string()
            } else {
                r.image.id.short().to_owned()
            };
            json!({
                "Containers": "N/A",
                "CreatedAt": go_time_string(r.image.created),
                "CreatedSince": time_ago(r.image.created, now),
                "Digest": r.digest,
                "ID": id,
                "Repository": r.repository,
                "SharedSize": "N/A",
                "Size": human_size_with_precision(r.image.size, 3),
                "Tag": r.tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(r.image.size),
            })
        })
        .collect();
    let headers = json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Digest": "DIGEST",
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE", "Size": "SIZE",
        "Tag": "TAG", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    let table = if a.quiet {
        "{{.ID}}"
    } else if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    // -q wins over a table default but not over an explicit --format, as in docker.
    let format = match (&a.format, a.quiet) {
        (Some(f), _) => Some(f.as_str()),
        (None, true) => Some(table),
        (None, false) => None,
    };
    print_rows(format, table, &headers, &values, "*formatter.imageContext")
}
