//! `skiff search`: docker's NAME DESCRIPTION STARS OFFICIAL AUTOMATED table.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::images::filter_arg;
use super::output::print_rows;
use super::GlobalOptions;
use crate::ops::registry::search::{search, SearchFilters};

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter", value_parser = filter_arg)]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long, value_name = "int", default_value_t = 25)]
    pub limit: usize,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// docker truncates descriptions to 45 characters with an ellipsis.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn run(g: &GlobalOptions, a: SearchArgs) -> Result<()> {
    let filters = SearchFilters::parse(&a.filter)?;
    let results = search(&a.term, a.limit, &filters, &g.insecure_registries)?;
    let values: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let desc = r.description.replace('\n', " ");
            json!({
                "Name": r.name,
                "Description": if a.no_trunc { desc } else { truncate(&desc, 45) },
                "StarCount": r.star_count.to_string(),
                "IsOfficial": if r.is_official { "[OK]" } else { "" },
                "IsAutomated": if r.is_automated { "[OK]" } else { "" },
            })
        })
        .collect();
    let headers = json!({
        "Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
        "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED",
    });
    let table =
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}";
    print_rows(
        a.format.as_deref(),
        table,
        &headers,
        &values,
        "*formatter.searchContext",
    )
}
