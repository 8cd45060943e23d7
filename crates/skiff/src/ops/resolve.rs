//! Finding an image from what a user typed: a name, a name:tag, a name@digest, a full ID or
//! a unique ID prefix — in docker's order.

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::store::ImageRecord;
use skiff_image::Digest;

use super::engine::Engine;
use super::error::OpError;

/// An image found from user input, with the reference that found it when it was a name.
pub struct Resolved {
    pub image: ImageRecord,
    /// The normalized tag or digest reference that matched, if the input was a name.
    pub reference: Option<Reference>,
}

/// Looks an image up; `Ok(None)` when nothing matches.
pub fn lookup(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    if let Some(id) = as_full_id(input) {
        return Ok(engine.meta.image(&id)?.map(|image| Resolved {
            image,
            reference: None,
        }));
    }
    match Reference::parse_normalized_tagged(input) {
        Ok(reference) => {
            let found = match reference.digest() {
                Some(_) => engine.meta.resolve_repo_digest(&reference.to_string())?,
                None => engine.meta.resolve_tag(&reference.to_string())?,
            };
            if let Some(id) = found {
                if let Some(image) = engine.meta.image(&id)? {
                    return Ok(Some(Resolved {
                        image,
                        reference: Some(reference),
                    }));
                }
            }
            by_prefix(engine, input)
        }
        Err(e) => {
            if is_hex_prefix(input) {
                by_prefix(engine, input)
            } else {
                Err(e.into())
            }
        }
    }
}

/// Looks an image up, failing with docker's "No such image" when nothing matches.
pub fn require(engine: &Engine, input: &str) -> Result<Resolved> {
    lookup(engine, input)?.ok_or_else(|| no_such_image(input).into())
}

/// docker's wording for a missing image: a full ID as `sha256:<hex>`, anything that parses as
/// a name (short hex IDs included) with its default tag (`0123abcd:latest`), the rest as typed.
pub fn no_such_image(input: &str) -> OpError {
    let shown = match (as_full_id(input), Reference::parse_normalized_tagged(input)) {
        (Some(id), _) => id.to_string(),
        (None, Ok(r)) => r.familiar_string(),
        (None, Err(_)) => input.to_owned(),
    };
    OpError::not_found(format!("No such image: {shown}"))
}

fn as_full_id(input: &str) -> Option<Digest> {
    if let Ok(d) = input.parse::<Digest>() {
        return Some(d);
    }
    if skiff_image::reference::is_full_hex_id(input) {
        return Digest::from_hex(input).ok();
    }
    None
}

fn is_hex_prefix(input: &str) -> bool {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn by_prefix(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    if !is_hex_prefix(input) {
        return Ok(None);
    }
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    let ids = engine.meta.ids_with_prefix(hex)?;
    match ids.as_slice() {
        [] => Ok(None),
        [id] => Ok(engine.meta.image(id)?.map(|image| Resolved {
            image,
            reference: None,
        })),
        _ => {
            Err(OpError::invalid(format!("multiple IDs found with provided prefix: {hex}")).into())
        }
    }
}

/// How docker shows a stored (normalized) tag: `busybox:latest`, `localhost:5000/app:v1`.
pub fn familiar(stored: &str) -> String {
    stored
        .parse::<Reference>()
        .map(|r| r.familiar_string())
        .unwrap_or_else(|_| stored.to_owned())
}
