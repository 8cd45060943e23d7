//! `skiff history`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::format::{human_size_with_precision, time_ago};
use super::output::{now_secs, print_rows, rfc3339_secs};
use super::GlobalOptions;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Pretty-print images using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// docker's `stringutils.Ellipsis`: at most `max` characters, the last one an ellipsis.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub fn run(g: &GlobalOptions, a: HistoryArgs) -> Result<()> {
    let engine = g.engine()?;
    let rows = crate::ops::history::history(&engine, &a.image)?;
    let now = now_secs();
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let id = if r.id == "<missing>" || a.no_trunc {
                r.id.clone()
            } else {
                r.id.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created_by = r.created_by.replace('\t', " ");
            let created_since = match (r.created, a.human) {
                (Some(t), true) => time_ago(t, now),
                (Some(t), false) => rfc3339_secs(t),
                (None, _) => "N/A".to_owned(),
            };
            json!({
                "ID": id,
                "CreatedSince": created_since,
                "CreatedAt": r.created.map(rfc3339_secs).unwrap_or_default(),
                "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": if a.human { human_size_with_precision(r.size, 3) } else { r.size.to_string() },
                "Comment": r.comment,
            })
        })
        .collect();
    let headers = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
        "Size": "SIZE", "Comment": "COMMENT",
    });
    let table = if a.quiet {
        "{{.ID}}"
    } else if a.human {
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    } else {
        // docker's non-human table shows the CREATED AT column.
        "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    };
    let format = match (&a.format, a.quiet) {
        (Some(f), _) => Some(f.as_str()),
        (None, true) => Some(table),
        (None, false) => None,
    };
    print_rows(format, table, &headers, &values, "*image.historyContext")
}
