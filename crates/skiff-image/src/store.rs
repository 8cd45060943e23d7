//! Image metadata in SQLite (`images.db`): images, tags, repo digests, layers and leases.
//!
//! Several skiff processes use the same database at once, which is the normal case: WAL mode
//! lets readers run beside a writer, every write is a `BEGIN IMMEDIATE` transaction (so two
//! writers queue on the busy timeout instead of deadlocking on a lock upgrade), and the
//! schema is versioned through `PRAGMA user_version` with forward-only migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::digest::Digest;
use crate::error::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("image metadata database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "image metadata database is newer (schema {found}) than this skiff understands ({known})"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("corrupt image metadata: {0}")]
    Corrupt(String),
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                ) =>
            {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a shipped
/// entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,             -- config digest: the image ID
        manifest TEXT NOT NULL,          -- manifest digest
        manifest_media_type TEXT NOT NULL,
        created INTEGER NOT NULL,        -- unix seconds from the config (0 if absent)
        size INTEGER NOT NULL,           -- bytes of the unpacked layers
        parent TEXT,                     -- local parent image (commit/build), for rmi checks
        added INTEGER NOT NULL
     );
     CREATE INDEX images_parent ON images(parent);
     CREATE TABLE layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        diff_id TEXT NOT NULL,
        blob TEXT NOT NULL,
        media_type TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        size INTEGER NOT NULL,           -- bytes of file content once unpacked (docker's layer size)
        PRIMARY KEY (image_id, position)
     );
     CREATE INDEX layers_blob ON layers(blob);
     CREATE TABLE tags (
        name TEXT PRIMARY KEY,           -- normalized, e.g. docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id),
        added INTEGER NOT NULL
     );
     CREATE INDEX tags_image ON tags(image_id);
     CREATE TABLE repo_digests (
        name TEXT NOT NULL,              -- normalized repository@digest
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (name)
     );
     CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,        -- unix seconds; an expired lease protects nothing
        pid INTEGER NOT NULL
     );
     CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,              -- 'blob' or 'snapshot'
        name TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, name)
     );",
];

/// One image as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    pub manifest_media_type: String,
    pub created: i64,
    pub size: u64,
    pub parent: Option<Digest>,
    pub added: i64,
}

/// One layer of an image, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub diff_id: Digest,
    pub blob: Digest,
    pub media_type: String,
    pub blob_size: u64,
    /// Bytes of file content in the layer, as `history` and `images` count sizes.
    pub size: u64,
}

/// The metadata database.
pub struct MetaStore {
    conn: Connection,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn digest_col(s: String) -> Result<Digest, rusqlite::Error> {
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl MetaStore {
    /// Opens `root/images.db`, creating and migrating it as needed.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(root.join("images.db"))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = MetaStore { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == known {
            return Ok(());
        }
        let tx = self.write()?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs a query with one text parameter and collects its first column as strings.
    fn strings(&self, sql: &str, param: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map([param], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs a query with one text parameter and collects its first column as digests.
    fn digests(&self, sql: &str, param: &str) -> Result<Vec<Digest>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map([param], |r| digest_col(r.get(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Looks up the image a name (tag or repo digest) points at.
    fn image_named(&self, sql: &str, name: &str) -> Result<Option<Digest>, StoreError> {
        Ok(self.digests(sql, name)?.into_iter().next())
    }

    /// Starts a write transaction that takes the database write lock at once.
    pub fn write(&self) -> Result<Transaction<'_>, StoreError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Records an image and its layers (replacing an existing record with the same ID).
    pub fn put_image(&self, image: &ImageRecord, layers: &[LayerRecord]) -> Result<(), StoreError> {
        let tx = self.write()?;
        put_image_tx(&tx, image, layers)?;
        tx.commit()?;
        Ok(())
    }

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, manifest, manifest_media_type, created, size, parent, added FROM images WHERE id = ?1",
                [id.to_string()],
                row_to_image,
            )
            .optional()?)
    }

    /// Every image, newest first (by creation time, then by when it was added).
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, manifest, manifest_media_type, created, size, parent, added FROM images ORDER BY created DESC, added DESC, id",
        )?;
        let rows = stmt
            .query_map([], row_to_image)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Image IDs whose hex starts with `prefix` (for short IDs on the command line).
    pub fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<Digest>, StoreError> {
        let pattern = format!("sha256:{}%", prefix.replace(['%', '_'], ""));
        self.digests("SELECT id FROM images WHERE id LIKE ?1", &pattern)
    }

    pub fn layers(&self, id: &Digest) -> Result<Vec<LayerRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT diff_id, blob, media_type, blob_size, size FROM layers WHERE image_id = ?1 ORDER BY position",
        )?;
        let rows = stmt
            .query_map([id.to_string()], |r| {
                Ok(LayerRecord {
                    diff_id: digest_col(r.get(0)?)?,
                    blob: digest_col(r.get(1)?)?,
                    media_type: r.get(2)?,
                    blob_size: r.get::<_, i64>(3)? as u64,
                    size: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Points `name` at `id`; returns the image it pointed at before, if another.
    pub fn tag(&self, name: &str, id: &Digest) -> Result<Option<Digest>, StoreError> {
        let tx = self.write()?;
        let previous = tag_tx(&tx, name, id)?;
        tx.commit()?;
        Ok(previous)
    }

    /// Removes a tag; false if it did not exist.
    pub fn untag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM tags WHERE name = ?1", [name])?
            > 0)
    }

    pub fn resolve_tag(&self, name: &str) -> Result<Option<Digest>, StoreError> {
        self.image_named("SELECT image_id FROM tags WHERE name = ?1", name)
    }

    /// Tags of one image, oldest first (the order `docker inspect` lists RepoTags in).
    pub fn tags_of(&self, id: &Digest) -> Result<Vec<String>, StoreError> {
        self.strings(
            "SELECT name FROM tags WHERE image_id = ?1 ORDER BY added, name",
            &id.to_string(),
        )
    }

    /// When the image was last tagged, in Unix nanoseconds.
    pub fn last_tag_time(&self, id: &Digest) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(added) FROM tags WHERE image_id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )?)
    }

    /// Every tag with its image.
    pub fn all_tags(&self) -> Result<Vec<(String, Digest)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, image_id FROM tags ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, digest_col(r.get(1)?)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn add_repo_digest(&self, name: &str, id: &Digest) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
            params![name, id.to_string()],
        )?;
        Ok(())
    }

    pub fn repo_digests_of(&self, id: &Digest) -> Result<Vec<String>, StoreError> {
        self.strings(
            "SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name",
            &id.to_string(),
        )
    }

    pub fn resolve_repo_digest(&self, name: &str) -> Result<Option<Digest>, StoreError> {
        self.image_named("SELECT image_id FROM repo_digests WHERE name = ?1", name)
    }

    /// Images whose recorded parent is `id` (built or committed on top of it).
    pub fn children(&self, id: &Digest) -> Result<Vec<Digest>, StoreError> {
        self.digests("SELECT id FROM images WHERE parent = ?1", &id.to_string())
    }

    /// Deletes an image record with its layers and repo digests. Tags must be gone already
    /// (the caller decides whether that is allowed); blobs are left for garbage collection.
    pub fn delete_image(&self, id: &Digest) -> Result<(), StoreError> {
        let tx = self.write()?;
        tx.execute("DELETE FROM tags WHERE image_id = ?1", [id.to_string()])?;
        tx.execute(
            "UPDATE images SET parent = NULL WHERE parent = ?1",
            [id.to_string()],
        )?;
        tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
        tx.commit()?;
        Ok(())
    }

    /// Every blob an image refers to (manifests, configs, layers): what GC must keep.
    pub fn referenced_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM images UNION SELECT manifest FROM images UNION SELECT blob FROM layers
             UNION SELECT name FROM lease_resources JOIN leases ON leases.id = lease_id
                   WHERE kind = 'blob' AND expires > ?1",
        )?;
        let rows = stmt
            .query_map([now()], |r| digest_col(r.get(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Names of resources of `kind` held by unexpired leases.
    pub fn leased(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM lease_resources JOIN leases ON leases.id = lease_id WHERE kind = ?1 AND expires > ?2",
        )?;
        let rows = stmt
            .query_map(params![kind, now()], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Takes a lease that protects what is added to it from GC until it is released or expires
    /// (expiry covers a process killed before it could release).
    pub fn create_lease(&self, ttl: Duration) -> Result<Lease<'_>, StoreError> {
        let id = format!("{:016x}{:08x}", rand::random::<u64>(), std::process::id());
        let t = now();
        self.conn.execute(
            "INSERT INTO leases (id, created, expires, pid) VALUES (?1, ?2, ?3, ?4)",
            params![id, t, t + ttl.as_secs() as i64, std::process::id()],
        )?;
        Ok(Lease { store: self, id })
    }

    /// Removes leases that have expired.
    pub fn prune_leases(&self) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM leases WHERE expires <= ?1", [now()])?)
    }
}

/// A held lease; released on drop.
pub struct Lease<'a> {
    store: &'a MetaStore,
    id: String,
}

impl Lease<'_> {
    pub fn add(&self, kind: &str, name: &str) -> Result<(), StoreError> {
        self.store.conn.execute(
            "INSERT OR IGNORE INTO lease_resources (lease_id, kind, name) VALUES (?1, ?2, ?3)",
            params![self.id, kind, name],
        )?;
        Ok(())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .store
            .conn
            .execute("DELETE FROM leases WHERE id = ?1", [&self.id])
        {
            log::warn!("releasing lease {}: {e} (it expires on its own)", self.id);
        }
    }
}

/// `put_image` inside a caller's transaction, so an image and its tag land together.
pub fn put_image_tx(
    tx: &Transaction<'_>,
    image: &ImageRecord,
    layers: &[LayerRecord],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO images (id, manifest, manifest_media_type, created, size, parent, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET manifest = excluded.manifest,
            manifest_media_type = excluded.manifest_media_type, size = excluded.size,
            parent = COALESCE(images.parent, excluded.parent)",
        params![
            image.id.to_string(),
            image.manifest.to_string(),
            image.manifest_media_type,
            image.created,
            image.size as i64,
            image.parent.as_ref().map(|p| p.to_string()),
            image.added,
        ],
    )?;
    tx.execute(
        "DELETE FROM layers WHERE image_id = ?1",
        [image.id.to_string()],
    )?;
    for (i, l) in layers.iter().enumerate() {
        tx.execute(
            "INSERT INTO layers (image_id, position, diff_id, blob, media_type, blob_size, size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                image.id.to_string(),
                i as i64,
                l.diff_id.to_string(),
                l.blob.to_string(),
                l.media_type,
                l.blob_size as i64,
                l.size as i64
            ],
        )?;
    }
    Ok(())
}

/// `tag` inside a caller's transaction.
pub fn tag_tx(tx: &Transaction<'_>, name: &str, id: &Digest) -> Result<Option<Digest>, StoreError> {
    let previous: Option<String> = tx
        .query_row("SELECT image_id FROM tags WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    let previous = previous.map(digest_col).transpose()?;
    if previous.as_ref() == Some(id) {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO tags (name, image_id, added) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, added = excluded.added",
        params![name, id.to_string(), now_nanos()],
    )?;
    Ok(previous)
}

/// Tag times in nanoseconds so that tags added in the same second keep their order.
fn now_nanos() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
}

fn row_to_image(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        id: digest_col(r.get(0)?)?,
        manifest: digest_col(r.get(1)?)?,
        manifest_media_type: r.get(2)?,
        created: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        parent: r.get::<_, Option<String>>(5)?.map(digest_col).transpose()?,
        added: r.get(6)?,
    })
}

/// Current Unix time in seconds (shared by callers that stamp records).
pub fn unix_now() -> i64 {
    now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: u8) -> ImageRecord {
        ImageRecord {
            id: Digest::of_bytes(&[n]),
            manifest: Digest::of_bytes(&[n, n]),
            manifest_media_type: crate::spec::media::OCI_MANIFEST.into(),
            created: n as i64,
            size: 10,
            parent: None,
            added: 0,
        }
    }

    #[test]
    fn tag_moves_and_untag_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(dir.path()).unwrap();
        let (a, b) = (image(1), image(2));
        store.put_image(&a, &[]).unwrap();
        store.put_image(&b, &[]).unwrap();
        assert_eq!(store.tag("x:latest", &a.id).unwrap(), None);
        assert_eq!(store.tag("x:latest", &b.id).unwrap(), Some(a.id.clone()));
        assert_eq!(store.resolve_tag("x:latest").unwrap(), Some(b.id.clone()));
        assert!(store.untag("x:latest").unwrap());
        assert!(store.tags_of(&b.id).unwrap().is_empty());
    }

    #[test]
    fn reopening_keeps_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let a = image(1);
        MetaStore::open(dir.path())
            .unwrap()
            .put_image(&a, &[])
            .unwrap();
        let store = MetaStore::open(dir.path()).unwrap();
        assert_eq!(store.image(&a.id).unwrap(), Some(a));
    }

    #[test]
    fn concurrent_taggers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = image(1);
        MetaStore::open(dir.path())
            .unwrap()
            .put_image(&a, &[])
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (path, id) = (dir.path(), a.id.clone());
                s.spawn(move || {
                    let store = MetaStore::open(path).unwrap();
                    for i in 0..25 {
                        store.tag(&format!("t{t}:{i}"), &id).unwrap();
                    }
                });
            }
        });
        assert_eq!(
            MetaStore::open(dir.path())
                .unwrap()
                .all_tags()
                .unwrap()
                .len(),
            100
        );
    }

    #[test]
    fn leases_protect_blobs_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(dir.path()).unwrap();
        let d = Digest::of_bytes(b"x");
        {
            let lease = store.create_lease(Duration::from_secs(60)).unwrap();
            lease.add("blob", &d.to_string()).unwrap();
            assert_eq!(store.referenced_blobs().unwrap(), vec![d.clone()]);
        }
        assert!(store.referenced_blobs().unwrap().is_empty());
    }
}
