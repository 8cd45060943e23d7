//! `skiff rename`.

use anyhow::Result;

use super::create::validate_name;
use super::store::{Container, ContainerStore};
use crate::ops::error::OpError;

/// Renames `c` to `new_name` (docker's rules and messages).
pub fn rename(store: &ContainerStore, c: &Container, new_name: &str) -> Result<()> {
    let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
    if new_name.is_empty() {
        return Err(OpError::invalid("Neither old nor new names may be empty").into());
    }
    validate_name(new_name)?;
    if new_name == c.name {
        return Err(OpError::invalid(
            "Renaming a container with the same name as its current name",
        )
        .into());
    }
    store.rename(&c.id, new_name)
}
