//! `skiff inspect` and `skiff image inspect`.
//!
//! Like docker's CLI: every name is looked up, what was found is printed (as one JSON array,
//! or one template result per object), then each failure is reported on its own line and the
//! command exits 1. Missing objects are `Error: No such object: NAME` for plain `inspect` and
//! the daemon's `No such image: NAME:latest` for `image inspect` / `--type image`.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::format::Template;
use super::output::InspectOutput;
use super::GlobalOptions;
use crate::ops::error::{kind_of, ErrorKind, PlainError};
use crate::ops::inspect::INSPECT_MAP_FIELDS;

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

/// The object types `docker inspect --type` knows.
const TYPES: &[&str] = &[
    "config",
    "container",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "task",
    "volume",
];

/// What docker's daemon answers for a name of a type skiff has no objects of (yet).
fn not_found(kind: &str, name: &str) -> String {
    match kind {
        "container" => format!("Error response from daemon: No such container: {name}"),
        "network" => format!("Error response from daemon: network {name} not found"),
        "volume" => format!("Error response from daemon: get {name}: no such volume"),
        "plugin" => format!("Error response from daemon: plugin \"{name}\" not found"),
        _ => "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".to_owned(),
    }
}

pub fn run(g: &GlobalOptions, a: InspectArgs, images_only: bool) -> Result<()> {
    let kind = match &a.kind {
        Some(t) if !TYPES.contains(&t.as_str()) => {
            let list: Vec<String> = TYPES.iter().map(|t| format!("{t:?}")).collect();
            return Err(PlainError::invalid(format!(
                "unknown type: {t:?}: must be one of {}",
                list.join(", ")
            ))
            .into());
        }
        Some(t) => Some(t.as_str()),
        None if images_only => Some("image"),
        None => None,
    };
    let engine = g.engine()?;
    let template = a.format.as_deref().map(Template::parse).transpose()?;
    let mut output = InspectOutput::new(template.as_ref());
    for name in &a.names {
        // docker looks for a container first, then an image.
        if matches!(kind, Some("container") | None) {
            if let Some(doc) =
                crate::ops::container::inspect::inspect_container(&engine, name, a.size)?
            {
                output.add(doc, |t, doc| execute_as(t, doc, "types.ContainerJSON"));
                continue;
            }
        }
        let doc = match kind {
            Some("image") | None => crate::ops::inspect::inspect_image(&engine, name),
            Some(other) => {
                output.error(not_found(other, name));
                continue;
            }
        };
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) if kind.is_none() => {
                // docker tries each object type; a name that is no image is no object.
                if !matches!(
                    kind_of(&e),
                    ErrorKind::NotFound | ErrorKind::InvalidArgument
                ) {
                    return Err(e);
                }
                output.error(format!("Error: No such object: {name}"));
                continue;
            }
            Err(e) => {
                if !matches!(
                    kind_of(&e),
                    ErrorKind::NotFound | ErrorKind::InvalidArgument
                ) {
                    return Err(e);
                }
                output.error(format!("Error response from daemon: {e}"));
                continue;
            }
        };
        output.add(doc, execute);
    }
    output.finish()
}

/// docker's `TemplateInspector`: the template runs on the typed object first; if that fails
/// it runs again on the raw JSON with `missingkey=error`, whose error is the one reported.
fn execute(t: &Template, doc: &Value) -> Result<String, super::format::TemplateError> {
    execute_as(t, doc, "types.ImageInspect")
}

fn execute_as(
    t: &Template,
    doc: &Value,
    type_name: &str,
) -> Result<String, super::format::TemplateError> {
    match t.clone().typed(type_name, INSPECT_MAP_FIELDS).execute(doc) {
        Ok(text) => Ok(text),
        Err(_) => t.clone().missing_key_error(true).execute(doc),
    }
}
