//! `skiff diff CONTAINER`: what the container changed in its filesystem (`A`dded,
//! `C`hanged, `D`eleted), from its writable snapshot.
//!
//! With overlay the upper directory holds exactly the changes: each entry is `A` unless the
//! lower layers have it (then `C`; a directory only when its own metadata changed, as
//! docker's change detection does), a whiteout is `D`, and an opaque directory deletes what
//! the lower layers had inside it. With vfs the container's tree is compared against its
//! parent's (`skiff_snapshot::ChangeDirs::Compare`).

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use skiff_snapshot::ChangeDirs;

use super::container::store::ContainerStore;
use super::engine::Engine;

/// The kind of a change, as docker prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

impl ChangeKind {
    /// `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path (absolute, as seen in the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

/// The changes of container `name`, sorted by path.
pub fn container_changes(engine: &Engine, name: &str) -> Result<Vec<Change>> {
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(name)?;
    let snapshotter = engine.snapshotter()?;
    let dirs = snapshotter.changes(&c.snapshot_key)?;
    let mut out = Vec::new();
    match dirs {
        ChangeDirs::OverlayUpper(upper) => {
            let lowers = overlay_lowers(&snapshotter.mounts(&c.snapshot_key)?);
            walk_upper(&upper, "", &lowers, &mut out)?;
        }
        ChangeDirs::Compare { lower, upper } => {
            walk_compare(lower.as_deref(), &upper, "", &mut out)?;
        }
    }
    // What docker's init layer holds (mountpoints the engine creates for every container)
    // is not the container's change; here the runtime creates them in the container's own
    // snapshot, so they are left out the same way.
    out.retain(|ch| !(ch.kind == ChangeKind::Added && INIT_PATHS.contains(&ch.path.as_str())));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The paths docker's init layer creates (`daemon/initlayer`, `setupInitLayer`).
const INIT_PATHS: &[&str] = &[
    "/dev/pts",
    "/dev/shm",
    "/proc",
    "/sys",
    "/.dockerenv",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/dev/console",
    "/etc/mtab",
];

/// The `lowerdir=` list of an overlay mount, topmost first.
fn overlay_lowers(mounts: &[skiff_snapshot::Mount]) -> Vec<PathBuf> {
    mounts
        .iter()
        .flat_map(|m| m.options.iter())
        .filter_map(|o| o.strip_prefix("lowerdir="))
        .flat_map(|l| l.split(':'))
        .map(PathBuf::from)
        .collect()
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// What the lower layers show at `rel` (the topmost entry; None if absent or whited out).
fn lower_meta(lowers: &[PathBuf], rel: &str) -> Option<(PathBuf, Metadata)> {
    for l in lowers {
        let p = l.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if is_whiteout(&m) => return None,
            Ok(m) => return Some((p, m)),
            Err(_) => {
                // An opaque directory on the way hides everything below it.
                if ancestors_opaque(l, rel) {
                    return None;
                }
            }
        }
    }
    None
}

fn ancestors_opaque(layer: &Path, rel: &str) -> bool {
    let mut p = PathBuf::from(layer);
    let comps: Vec<&str> = rel.split('/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(c);
        if is_opaque(&p) {
            return true;
        }
    }
    false
}

fn join_rel(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, Metadata)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let m = fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
        out.push((e.file_name().to_string_lossy().into_owned(), p, m));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether a directory present in both trees changed itself (mode, owner, mtime).
fn dir_changed(old: &Metadata, new: &Metadata) -> bool {
    old.mode() != new.mode()
        || old.uid() != new.uid()
        || old.gid() != new.gid()
        || old.mtime() != new.mtime()
        || old.mtime_nsec() != new.mtime_nsec()
}

fn walk_upper(upper: &Path, rel: &str, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    for (name, path, meta) in sorted_entries(&upper.join(rel))? {
        let child = join_rel(rel, &name);
        let shown = format!("/{child}");
        if is_whiteout(&meta) {
            out.push(Change {
                kind: ChangeKind::Deleted,
                path: shown,
            });
            continue;
        }
        let lower = lower_meta(lowers, &child);
        match &lower {
            None => out.push(Change {
                kind: ChangeKind::Added,
                path: shown.clone(),
            }),
            Some((_, lm)) => {
                let changed = !(meta.is_dir() && lm.is_dir()) || dir_changed(lm, &meta);
                if changed {
                    out.push(Change {
                        kind: ChangeKind::Modified,
                        path: shown.clone(),
                    });
                }
            }
        }
        if meta.is_dir() {
            if is_opaque(&path) {
                if let Some((lp, lm)) = &lower {
                    if lm.is_dir() {
                        // Everything the lower layers had here and the upper lacks is gone.
                        for (lname, _, _) in sorted_entries(lp)? {
                            if fs::symlink_metadata(path.join(&lname)).is_err() {
                                out.push(Change {
                                    kind: ChangeKind::Deleted,
                                    path: format!("{shown}/{lname}"),
                                });
                            }
                        }
                    }
                }
            }
            walk_upper(upper, &child, lowers, out)?;
        }
    }
    Ok(())
}

fn walk_compare(
    lower: Option<&Path>,
    upper: &Path,
    rel: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    let up_dir = upper.join(rel);
    for (name, path, meta) in sorted_entries(&up_dir)? {
        let child = join_rel(rel, &name);
        let shown = format!("/{child}");
        let lower_path = lower.map(|l| l.join(&child));
        let lm = match &lower_path {
            Some(p) => match fs::symlink_metadata(p) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("lstat {}", p.display())))
                }
            },
            None => None,
        };
        match &lm {
            None => out.push(Change {
                kind: ChangeKind::Added,
                path: shown,
            }),
            Some(lm) => {
                let same_type = lm.file_type() == meta.file_type();
                let changed = !same_type
                    || dir_changed(lm, &meta)
                    || lm.rdev() != meta.rdev()
                    || (!meta.is_dir() && lm.len() != meta.len())
                    || (meta.file_type().is_symlink()
                        && fs::read_link(lower_path.as_deref().unwrap_or(&path)).ok()
                            != fs::read_link(&path).ok());
                if changed {
                    out.push(Change {
                        kind: ChangeKind::Modified,
                        path: shown,
                    });
                }
            }
        }
        if meta.is_dir() {
            // Without a lower directory (a new one), everything in it is new.
            let lower_dir = match (&lm, lower) {
                (Some(m), Some(l)) if m.is_dir() => Some(l),
                _ => None,
            };
            walk_compare(lower_dir, upper, &child, out)?;
        }
    }
    if let Some(l) = lower {
        let low_dir = l.join(rel);
        if low_dir.is_dir() {
            for (name, _, _) in sorted_entries(&low_dir)? {
                if fs::symlink_metadata(up_dir.join(&name)).is_err() {
                    out.push(Change {
                        kind: ChangeKind::Deleted,
                        path: format!("/{}", join_rel(rel, &name)),
                    });
                }
            }
        }
    }
    Ok(())
}
