//! `skiff history`: the image's config history, newest first, with docker's `<missing>` rows.

use anyhow::Result;
use skiff_image::spec::parse_rfc3339;

use super::engine::Engine;
use super::list::read_config;
use super::resolve;

#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// The image ID for the top row, `<missing>` for the rows below it.
    pub id: String,
    pub created: Option<i64>,
    pub created_rfc3339: String,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

pub fn history(engine: &Engine, input: &str) -> Result<Vec<HistoryRow>> {
    let image = resolve::require(engine, input)?.image;
    let config = read_config(engine, &image.id)?;
    let layers = engine.meta.layers(&image.id)?;
    let mut layer_sizes = layers.iter().map(|l| l.size);
    let mut rows: Vec<HistoryRow> = config
        .history
        .iter()
        .map(|h| HistoryRow {
            id: "<missing>".into(),
            created: h.created.as_deref().and_then(parse_rfc3339),
            created_rfc3339: h.created.clone().unwrap_or_default(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size: if h.empty_layer {
                0
            } else {
                layer_sizes.next().unwrap_or(0)
            },
            comment: h.comment.clone().unwrap_or_default(),
            empty_layer: h.empty_layer,
        })
        .collect();
    rows.reverse();
    match rows.first_mut() {
        Some(top) => top.id = image.id.to_string(),
        None => rows.push(HistoryRow {
            id: image.id.to_string(),
            created: Some(image.created),
            created_rfc3339: config.created.clone().unwrap_or_default(),
            created_by: String::new(),
            size: image.size,
            comment: String::new(),
            empty_layer: false,
        }),
    }
    Ok(rows)
}
