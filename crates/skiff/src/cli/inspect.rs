//! `skiff inspect` and `skiff image inspect`.

use anyhow::Result;
use clap::Args;

use super::format::Template;
use super::output::to_docker_json;
use super::GlobalOptions;
use crate::ops::error::OpError;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

pub fn run(g: &GlobalOptions, a: InspectArgs, images_only: bool) -> Result<()> {
    if let Some(t) = &a.kind {
        if t != "image" {
            return Err(
                OpError::invalid(format!("\"{t}\" is not a valid value for --type")).into(),
            );
        }
    }
    let engine = g.engine()?;
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.names {
        match crate::ops::resolve::lookup(&engine, name)? {
            Some(_) => found.push(crate::ops::inspect::inspect_image(&engine, name)?),
            None => missing.push(name.clone()),
        }
    }
    match &template {
        Some(t) => {
            for v in &found {
                println!("{}", t.execute(v)?);
            }
        }
        None => println!("{}", to_docker_json(&found)?),
    }
    if let Some(name) = missing.first() {
        // docker prints what it found, then fails on the first name it did not.
        let what = if images_only { "image" } else { "object" };
        return Err(OpError::not_found(format!("No such {what}: {name}")).into());
    }
    Ok(())
}
