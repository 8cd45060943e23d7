//! skiff-snapshot: layered filesystems.
//!
//! Where to start reading:
//! - [`snapshotter`]: the Snapshotter contract (prepare / view / mounts / commit / remove /
//!   walk), with a worked example of unpacking an image.
//! - [`overlay`] and [`vfs`]: the two drivers; [`open`] picks one for a state root.
//! - [`layer`]: applying a layer tar to a directory (whiteouts, confinement) and writing the
//!   changes of a directory back out as a layer tar; compression detection.
//! - [`mount`]: turning mounts-as-data into mounts.
//! - `meta`: snapshot metadata and directories shared by both drivers; `copy`: full tree copy.

mod copy;
pub mod layer;
mod meta;
pub mod mount;
pub mod overlay;
pub mod snapshotter;
pub mod vfs;

#[cfg(test)]
mod testsuite;

use std::fs;
use std::path::Path;

pub use snapshotter::{ChangeDirs, Info, Kind, LayerTarget, Mount, SnapshotError, Snapshotter};

use snapshotter::io_err;

/// The drivers skiff knows, in order of preference.
pub const DRIVERS: &[&str] = &["overlay", "vfs"];

/// Opens the snapshotter for the state root `root`: the named driver, or overlay where the
/// kernel supports it here and vfs otherwise. Each driver keeps its snapshots apart under
/// `root/snapshots/<driver>/`, so switching drivers never mixes their trees.
pub fn open(root: &Path, driver: Option<&str>) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    let base = root.join("snapshots");
    fs::create_dir_all(&base).map_err(io_err(&base))?;
    let name = match driver {
        Some(d) => d.to_owned(),
        None => match overlay_support(&base) {
            Ok(()) => "overlay".to_owned(),
            Err(reason) => {
                log::info!("storage driver overlay unavailable ({reason}); using vfs");
                "vfs".to_owned()
            }
        },
    };
    match name.as_str() {
        "overlay" => {
            if driver.is_some() {
                overlay_support(&base).map_err(SnapshotError::OverlayUnsupported)?;
            }
            Ok(Box::new(overlay::OverlaySnapshotter::open(
                &base.join("overlay"),
            )?))
        }
        "vfs" => Ok(Box::new(vfs::VfsSnapshotter::open(&base.join("vfs"))?)),
        other => Err(SnapshotError::UnknownDriver(other.to_owned())),
    }
}

/// Whether overlayfs works on the filesystem under `base`, probed once by a real mount and
/// remembered in `base/overlay-probe` (the answer cannot change while the root stays put).
fn overlay_support(base: &Path) -> Result<(), String> {
    let record = base.join("overlay-probe");
    if let Ok(saved) = fs::read_to_string(&record) {
        return if saved == "ok" { Ok(()) } else { Err(saved) };
    }
    let answer = probe_overlay(base);
    let text = match &answer {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let tmp = base.join(format!("overlay-probe.{}", std::process::id()));
    if fs::write(&tmp, text).is_ok() {
        let _ = fs::rename(&tmp, &record);
    }
    answer
}

fn probe_overlay(base: &Path) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(base)
        .map_err(|e| e.to_string())?;
    let p = dir.path();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(p.join(d)).map_err(|e| e.to_string())?;
    }
    let m = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}", p.join("lower").display()),
            format!("upperdir={}", p.join("upper").display()),
            format!("workdir={}", p.join("work").display()),
        ],
    };
    let merged = p.join("merged");
    mount::mount_all(&[m], &merged).map_err(|e| e.to_string())?;
    mount::unmount_all(&merged).map_err(|e| e.to_string())
}
