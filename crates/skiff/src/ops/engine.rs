//! The opened state of one `--root`: content store, image metadata and (on first use) the
//! snapshotter. Every operation takes an `&Engine`.

use std::cell::OnceCell;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use skiff_image::content::ContentStore;
use skiff_image::store::MetaStore;
use skiff_snapshot::Snapshotter;

pub struct Engine {
    root: PathBuf,
    pub content: ContentStore,
    pub meta: MetaStore,
    driver: Option<String>,
    snapshotter: OnceCell<Box<dyn Snapshotter>>,
}

impl Engine {
    /// Opens (creating if needed) the state under `root`. `driver` forces a storage driver.
    pub fn open(root: &Path, driver: Option<&str>) -> Result<Engine> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating root directory {}", root.display()))?;
        let content = ContentStore::open(root)?;
        let meta = MetaStore::open(root)?;
        Ok(Engine {
            root: root.to_owned(),
            content,
            meta,
            driver: driver.map(str::to_owned),
            snapshotter: OnceCell::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The snapshotter, opened (and overlay support probed) the first time it is needed, so
    /// commands that never touch a filesystem tree never pay for it.
    pub fn snapshotter(&self) -> Result<&dyn Snapshotter> {
        if let Some(s) = self.snapshotter.get() {
            return Ok(s.as_ref());
        }
        let s = skiff_snapshot::open(&self.root, self.driver.as_deref())?;
        Ok(self.snapshotter.get_or_init(|| s).as_ref())
    }

    /// A directory for lock files that serialize work on one object across processes.
    pub fn lock_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("locks");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// A scratch directory on the same filesystem as the store (for renames into it).
    pub fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }
}

/// An exclusive advisory lock on `dir/name`, released when dropped.
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    pub fn acquire(dir: &Path, name: &str) -> Result<FileLock> {
        let path = dir.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(FileLock { _file: file })
    }
}
