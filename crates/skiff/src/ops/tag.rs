//! `skiff tag SOURCE TARGET`.

use anyhow::Result;
use skiff_image::reference::{is_full_hex_id, Reference};

use super::engine::Engine;
use super::error::{OpError, PlainError};
use super::resolve;

/// Parses a reference the user wants to create (a tag target, an import name), refusing
/// digests and 64-hex names as docker does.
pub fn parse_new_tag(target: &str) -> Result<Reference> {
    if is_full_hex_id(target) {
        return Err(OpError::invalid(format!(
            "invalid repository name ({target}), cannot specify 64-byte hexadecimal strings"
        ))
        .into());
    }
    let reference = Reference::parse_normalized_tagged(target)?;
    if reference.digest().is_some() {
        return Err(OpError::invalid("refusing to create a tag with a digest reference").into());
    }
    Ok(reference)
}

/// `tag SOURCE TARGET`. Both names are checked first, as docker's client checks them (its
/// errors print without the daemon prefix).
pub fn tag(engine: &Engine, source: &str, target: &str) -> Result<()> {
    let not_valid = |name: &str, e: &dyn std::fmt::Display| {
        PlainError::invalid(format!(
            "Error parsing reference: {name:?} is not a valid repository/tag: {e}"
        ))
    };
    // docker's ParseAnyReference: IDs and digests are fine, anything else must be a name.
    if !is_full_hex_id(source) && source.parse::<skiff_image::Digest>().is_err() {
        Reference::parse_normalized(source).map_err(|e| not_valid(source, &e))?;
    }
    let parsed = Reference::parse_normalized(target).map_err(|e| not_valid(target, &e))?;
    if parsed.digest().is_some() {
        return Err(PlainError::invalid("refusing to create a tag with a digest reference").into());
    }
    let target = parse_new_tag(target)?;
    let image = resolve::require(engine, source)?.image;
    engine.meta.tag(&target.to_string(), &image.id)?;
    Ok(())
}
