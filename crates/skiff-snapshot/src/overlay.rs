//! The overlay driver: each snapshot directory holds only its own changes; a container's
//! rootfs is an overlayfs of its parents' `fs` directories (lower) and its own (upper).

use std::path::{Path, PathBuf};

use crate::layer::WhiteoutMode;
use crate::meta::{dir_size, SnapshotDirs};
use crate::snapshotter::{ChangeDirs, Info, Kind, LayerTarget, Mount, SnapshotError, Snapshotter};

pub struct OverlaySnapshotter {
    dirs: SnapshotDirs,
}

impl OverlaySnapshotter {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        Ok(OverlaySnapshotter {
            dirs: SnapshotDirs::open(root)?,
        })
    }

    fn fs(&self, info: &Info) -> PathBuf {
        self.dirs.dir(info.id).join("fs")
    }

    fn mounts_for(&self, info: &Info, chain: &[Info]) -> Vec<Mount> {
        let lower: Vec<String> = chain
            .iter()
            .map(|p| self.fs(p).display().to_string())
            .collect();
        match (info.kind, lower.len()) {
            (Kind::View, 0) | (Kind::Active, 0) => {
                vec![bind(&self.fs(info), info.kind == Kind::View)]
            }
            // overlayfs refuses a single lower dir without an upper: bind the parent instead.
            (Kind::View, 1) => vec![bind(&self.fs(&chain[0]), true)],
            (Kind::View, _) => vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![format!("lowerdir={}", lower.join(":"))],
            }],
            _ => {
                let dir = self.dirs.dir(info.id);
                vec![Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![
                        "index=off".into(),
                        format!("lowerdir={}", lower.join(":")),
                        format!("upperdir={}", dir.join("fs").display()),
                        format!("workdir={}", dir.join("work").display()),
                    ],
                }]
            }
        }
    }
}

fn bind(path: &Path, readonly: bool) -> Mount {
    let mut options = vec!["rbind".to_owned()];
    options.push(if readonly { "ro" } else { "rw" }.to_owned());
    Mount {
        kind: "bind".into(),
        source: path.to_owned(),
        options,
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn driver(&self) -> &'static str {
        "overlay"
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        let (info, chain) = self.dirs.create(key, parent, Kind::Active)?;
        let work = self.dirs.dir(info.id).join("work");
        std::fs::create_dir_all(&work).map_err(crate::snapshotter::io_err(&work))?;
        Ok(self.mounts_for(&info, &chain))
    }

    fn view(&self, key: &str, parent: &str) -> Result<Vec<Mount>, SnapshotError> {
        let (info, chain) = self.dirs.create(key, Some(parent), Kind::View)?;
        Ok(self.mounts_for(&info, &chain))
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let (info, chain) = self.dirs.with_chain(key)?;
        Ok(self.mounts_for(&info, &chain))
    }

    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.dirs.commit(name, key)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        self.dirs.remove(key)
    }

    fn stat(&self, key: &str) -> Result<Option<Info>, SnapshotError> {
        self.dirs.get(key)
    }

    fn walk(&self) -> Result<Vec<Info>, SnapshotError> {
        self.dirs.walk()
    }

    fn usage(&self, key: &str) -> Result<u64, SnapshotError> {
        let info = self.dirs.require(key)?;
        dir_size(&self.fs(&info))
    }

    fn layer_target(&self, key: &str) -> Result<LayerTarget, SnapshotError> {
        let info = self.dirs.require(key)?;
        Ok(LayerTarget {
            dir: self.fs(&info),
            whiteouts: WhiteoutMode::Overlay,
        })
    }

    fn cleanup(&self) -> Result<usize, SnapshotError> {
        self.dirs.cleanup_orphans()
    }

    fn changes(&self, key: &str) -> Result<ChangeDirs, SnapshotError> {
        let info = self.dirs.require(key)?;
        Ok(ChangeDirs::OverlayUpper(self.fs(&info)))
    }
}
