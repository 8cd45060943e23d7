//! `skiff registry gc`: mark every blob a manifest of any repository references (configs,
//! layers, the manifests an index lists, and the manifests themselves), then delete the rest.
//!
//! Like distribution's garbage collector, it should run while the server is stopped or
//! `--read-only`: a blob uploaded for a manifest not yet pushed is not referenced yet.

use std::collections::HashSet;
use std::path::Path;

use skiff_image::Digest;

use super::errors::ServerError;
use super::manifests;
use super::storage::Storage;

/// What a collection found (and, unless dry-run, deleted).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs kept because something references them.
    pub marked: usize,
    /// Blobs nothing references, with their sizes.
    pub unreferenced: Vec<(Digest, u64)>,
    /// Manifests that could not be read or parsed (their references could not be marked).
    pub warnings: Vec<String>,
    /// Abandoned upload directories removed.
    pub ingests_removed: usize,
}

pub fn gc(root: &Path, dry_run: bool) -> Result<GcReport, ServerError> {
    let storage = Storage::open(root)?;
    let db_err = |e: super::storage::DbError| ServerError::Config {
        path: root.join("registry.db"),
        message: e.to_string(),
    };
    let mut report = GcReport::default();
    let mut marked: HashSet<Digest> = HashSet::new();
    for (repo, digest) in storage.all_manifests().map_err(db_err)? {
        marked.insert(digest.clone());
        let row = storage
            .resolve(&repo, &digest.to_string())
            .map_err(db_err)?;
        let media_type = row.map(|r| r.media_type);
        let bytes = match storage.content().read_blob(&digest) {
            Ok(b) => b,
            Err(e) => {
                report.warnings.push(format!("{repo}@{digest}: {e}"));
                continue;
            }
        };
        match manifests::parse(&bytes, media_type.as_deref()) {
            Ok(p) => marked.extend(p.blobs.into_iter().chain(p.children)),
            Err(e) => report.warnings.push(format!(
                "{repo}@{digest}: {}",
                e.detail.unwrap_or_else(|| e.code.message().to_owned())
            )),
        }
    }
    if !report.warnings.is_empty() && !dry_run {
        // A manifest we could not read may reference anything: deleting now could break it.
        return Err(ServerError::Config {
            path: root.to_owned(),
            message: format!(
                "not collecting: {} manifest(s) could not be read: {}",
                report.warnings.len(),
                report.warnings.join("; ")
            ),
        });
    }
    for (digest, size) in storage.content().list()? {
        if marked.contains(&digest) {
            report.marked += 1;
        } else {
            report.unreferenced.push((digest, size));
        }
    }
    if !dry_run {
        for (digest, _) in &report.unreferenced {
            storage.content().delete(digest)?;
        }
        let gone: Vec<Digest> = report.unreferenced.iter().map(|(d, _)| d.clone()).collect();
        storage.unlink_everywhere(&gone).map_err(db_err)?;
        report.ingests_removed = storage.content().prune_ingests()?;
    }
    Ok(report)
}
