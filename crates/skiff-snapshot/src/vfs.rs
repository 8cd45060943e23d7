//! The vfs driver: every snapshot is a full copy of its parent plus its own changes. Slow and
//! large, but it needs no kernel support at all, which makes it the fallback everywhere.

use std::path::{Path, PathBuf};

use crate::copy::copy_tree;
use crate::layer::WhiteoutMode;
use crate::meta::{dir_size, SnapshotDirs};
use crate::snapshotter::{ChangeDirs, Info, Kind, LayerTarget, Mount, SnapshotError, Snapshotter};

pub struct VfsSnapshotter {
    dirs: SnapshotDirs,
}

impl VfsSnapshotter {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        Ok(VfsSnapshotter {
            dirs: SnapshotDirs::open(root)?,
        })
    }

    fn fs(&self, info: &Info) -> PathBuf {
        self.dirs.dir(info.id).join("fs")
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let (info, chain) = self.dirs.create(key, parent, kind)?;
        if let Some(p) = chain.first() {
            if let Err(e) = copy_tree(&self.fs(p), &self.fs(&info)) {
                // Leave nothing half-copied behind under this key.
                let _ = self.dirs.remove(key);
                return Err(e);
            }
        }
        Ok(vec![self.mount_of(&info)])
    }

    fn mount_of(&self, info: &Info) -> Mount {
        let ro = if info.kind == Kind::View { "ro" } else { "rw" };
        Mount {
            kind: "bind".into(),
            source: self.fs(info),
            options: vec!["rbind".into(), ro.into()],
        }
    }
}

impl Snapshotter for VfsSnapshotter {
    fn driver(&self) -> &'static str {
        "vfs"
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)
    }

    fn view(&self, key: &str, parent: &str) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, Some(parent), Kind::View)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        Ok(vec![self.mount_of(&self.dirs.require(key)?)])
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
        dir_size(&self.fs(&self.dirs.require(key)?))
    }

    fn layer_target(&self, key: &str) -> Result<LayerTarget, SnapshotError> {
        Ok(LayerTarget {
            dir: self.fs(&self.dirs.require(key)?),
            whiteouts: WhiteoutMode::Remove,
        })
    }

    fn cleanup(&self) -> Result<usize, SnapshotError> {
        self.dirs.cleanup_orphans()
    }

    fn changes(&self, key: &str) -> Result<ChangeDirs, SnapshotError> {
        let (info, chain) = self.dirs.with_chain(key)?;
        Ok(ChangeDirs::Compare {
            lower: chain.first().map(|p| self.fs(p)),
            upper: self.fs(&info),
        })
    }
}
