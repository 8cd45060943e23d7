//! The content store: immutable blobs under `blobs/sha256/<hex>`, written only through
//! `ingest/<ref>/`.
//!
//! A blob is either whole and verified or absent. Writers append to `ingest/<ref>/data` while
//! holding an exclusive lock on `ingest/<ref>/lock`; `commit` fsyncs, checks size and digest,
//! renames into place and fsyncs the directory. Two processes committing the same blob both
//! succeed (the second rename replaces identical bytes, or finds the blob present). A killed
//! writer leaves only its ingest directory, which the next writer with the same ref resumes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::digest::{Digest, Hasher};
use crate::error::{io_kind, ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("invalid ingest ref {0:?}")]
    InvalidRef(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl HasKind for ContentError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) => ErrorKind::NotFound,
            ContentError::SizeMismatch { .. }
            | ContentError::DigestMismatch { .. }
            | ContentError::InvalidRef(_) => ErrorKind::InvalidArgument,
            ContentError::Io { source, .. } => io_kind(source),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The blob store rooted at a state directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root` (`root/blobs/sha256`, `root/ingest`).
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        Ok(ContentStore { blobs, ingest })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// The size of a committed blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()))
            }
            Err(e) => Err(ContentError::Io {
                path: self.blob_path(digest),
                source: e,
            }),
        }
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest.clone())
            } else {
                ContentError::Io { path, source: e }
            }
        })
    }

    /// Reads a small blob (a manifest or config) whole, verifying its digest so that a blob
    /// damaged on disk is reported rather than parsed.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut bytes = Vec::new();
        let path = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let actual = Digest::of_bytes(&bytes);
        if &actual != digest {
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Writes a whole in-memory blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let digest = Digest::of_bytes(bytes);
        if self.exists(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer(&format!("put-{}", digest.hex()))?;
        w.truncate()?;
        w.write_all(bytes).map_err(io_err(&self.ingest))?;
        w.commit(Some(bytes.len() as u64), Some(&digest))
    }

    /// Streams a blob of known digest into the store (skipping it when already present).
    pub fn copy_in(
        &self,
        mut reader: impl Read,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<(), ContentError> {
        if self.exists(expected) {
            return Ok(());
        }
        let mut w = self.writer(&format!("put-{}", expected.hex()))?;
        if self.exists(expected) {
            // Another process committed it while we waited for the ingest lock.
            w.discard();
            return Ok(());
        }
        w.truncate()?;
        io::copy(&mut reader, &mut w).map_err(io_err(&self.ingest))?;
        w.commit(size, Some(expected)).map(|_| ())
    }

    /// Opens (or resumes) the ingest `reference`, blocking until no other process holds it.
    ///
    /// If a previous writer with the same ref was killed, its data is kept and re-hashed so the
    /// new writer continues at `offset()`; call [`IngestWriter::truncate`] to start over.
    pub fn writer(&self, reference: &str) -> Result<IngestWriter, ContentError> {
        if reference.is_empty() || reference.contains('/') || reference.starts_with('.') {
            return Err(ContentError::InvalidRef(reference.to_owned()));
        }
        let dir = self.ingest.join(reference);
        let lock = lock_ingest(&dir)?;
        let data_path = dir.join("data");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&data_path)
            .map_err(io_err(&data_path))?;
        let mut hasher = Hasher::new();
        io::copy(
            &mut BufReader::with_capacity(1 << 20, &mut file),
            &mut hasher,
        )
        .map_err(io_err(&data_path))?;
        file.seek(SeekFrom::End(0)).map_err(io_err(&data_path))?;
        Ok(IngestWriter {
            blobs: self.blobs.clone(),
            dir,
            data_path,
            file,
            hasher,
            _lock: lock,
        })
    }

    /// Deletes a blob. Deleting a missing blob is not an error (GC may race another GC).
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContentError::Io { path, source: e }),
        }
    }

    /// Every committed blob with its size.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>, ContentError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_err(&self.blobs))? {
            let entry = entry.map_err(io_err(&self.blobs))?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(|h| Digest::from_hex(h).ok()) else {
                continue;
            };
            let len = entry.metadata().map_err(io_err(&entry.path()))?.len();
            out.push((digest, len));
        }
        out.sort();
        Ok(out)
    }

    /// Removes ingest directories that no live writer holds: the leftovers of killed writers
    /// that nobody resumed. Returns how many were removed.
    pub fn prune_ingests(&self) -> Result<usize, ContentError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.ingest).map_err(io_err(&self.ingest))? {
            let dir = entry.map_err(io_err(&self.ingest))?.path();
            let lock_path = dir.join("lock");
            let Ok(lock) = File::open(&lock_path) else {
                let _ = fs::remove_dir_all(&dir);
                continue;
            };
            if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Takes the exclusive lock of an ingest directory. A committing writer removes the directory,
/// so a waiter may wake holding the lock of a deleted file: it then tries again on the new one.
fn lock_ingest(dir: &Path) -> Result<File, ContentError> {
    use std::os::unix::fs::MetadataExt;
    let lock_path = dir.join("lock");
    loop {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = match OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&lock_path)
        {
            Ok(f) => f,
            // A committing writer removed the directory between our mkdir and open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ContentError::Io {
                    path: lock_path.clone(),
                    source: e,
                })
            }
        };
        flock(&lock, FlockOperation::LockExclusive).map_err(|e| ContentError::Io {
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let held = lock.metadata().map_err(io_err(&lock_path))?;
        match fs::metadata(&lock_path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(lock),
            _ => continue,
        }
    }
}

/// An open ingest: append bytes, then commit them as a blob.
pub struct IngestWriter {
    blobs: PathBuf,
    dir: PathBuf,
    data_path: PathBuf,
    file: File,
    hasher: Hasher,
    // Held for the writer's lifetime: the flock is what makes the ingest exclusive.
    _lock: File,
}

impl IngestWriter {
    /// Bytes already in the ingest (non-zero when resuming a killed writer's data).
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Drops whatever a previous writer left and starts from zero.
    pub fn truncate(&mut self) -> Result<(), ContentError> {
        self.file.set_len(0).map_err(io_err(&self.data_path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_err(&self.data_path))?;
        self.hasher = Hasher::new();
        Ok(())
    }

    /// Verifies and commits the ingest as a blob, returning its digest. The ingest directory is
    /// removed whether the blob was new or already present.
    pub fn commit(
        mut self,
        expected_size: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Digest, ContentError> {
        let actual = self.hasher.clone().finish();
        let size = self.hasher.len();
        if let Some(want) = expected_size {
            if want != size {
                self.discard();
                return Err(ContentError::SizeMismatch {
                    digest: actual.to_string(),
                    expected: want,
                    actual: size,
                });
            }
        }
        if let Some(want) = expected {
            if want != &actual {
                self.discard();
                return Err(ContentError::DigestMismatch {
                    expected: want.clone(),
                    actual,
                });
            }
        }
        let target = self.blobs.join(actual.hex());
        if !target.exists() {
            self.file.flush().map_err(io_err(&self.data_path))?;
            self.file.sync_all().map_err(io_err(&self.data_path))?;
            let perms = std::os::unix::fs::PermissionsExt::from_mode(0o444);
            fs::set_permissions(&self.data_path, perms).map_err(io_err(&self.data_path))?;
            fs::rename(&self.data_path, &target).map_err(io_err(&target))?;
            File::open(&self.blobs)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.blobs))?;
        }
        self.discard();
        Ok(actual)
    }

    fn discard(&mut self) {
        // The lock file goes with the directory; a waiting writer that then opens the same
        // ref simply recreates it.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Write for IngestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        assert_eq!(store.size(&d).unwrap(), 5);
        assert_eq!(store.list().unwrap(), vec![(d.clone(), 5)]);
        // Writing the same blob again succeeds and leaves no ingest behind.
        assert_eq!(store.write_blob(b"hello").unwrap(), d);
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn wrong_digest_is_refused_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let mut w = store.writer("x").unwrap();
        w.write_all(b"abc").unwrap();
        let wrong = Digest::of_bytes(b"abd");
        let err = w.commit(None, Some(&wrong)).unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn killed_writer_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        {
            let mut w = store.writer("resume").unwrap();
            w.write_all(b"hello ").unwrap();
            // Dropped without commit: what a kill leaves behind.
        }
        let mut w = store.writer("resume").unwrap();
        assert_eq!(w.offset(), 6);
        w.write_all(b"world").unwrap();
        let d = w
            .commit(Some(11), Some(&Digest::of_bytes(b"hello world")))
            .unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello world");
    }

    #[test]
    fn concurrent_writers_of_one_blob_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data = vec![7u8; 1 << 20];
        let expected = Digest::of_bytes(&data);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    store
                        .copy_in(&data[..], &expected, Some(data.len() as u64))
                        .unwrap()
                });
            }
        });
        assert_eq!(store.read_blob(&expected).unwrap().len(), data.len());
    }

    #[test]
    fn corrupt_blob_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_blob(b"{}").unwrap();
        let p = store.blob_path(&d);
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        fs::write(&p, b"{ ").unwrap();
        assert!(matches!(
            store.read_blob(&d),
            Err(ContentError::DigestMismatch { .. })
        ));
    }
}
