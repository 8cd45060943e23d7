//! The registry's state under its root: blobs in skiff-image's content store (`blobs/sha256`,
//! written through `ingest/`, so a blob is whole and verified or absent), and which repository
//! holds which blobs, manifests and tags in `registry.db` (SQLite, WAL; each change one
//! transaction).
//!
//! Blobs are shared by all repositories; a repository sees a blob only once it is linked to it
//! (by an upload, a mount or a manifest push), as in distribution.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use skiff_image::content::ContentStore;
use skiff_image::Digest;

use super::errors::ServerError;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_links (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT,
    artifact_type TEXT,
    annotations TEXT,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo, subject)
    WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
";

/// A stored manifest as the database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRow {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
    /// The manifest's top-level annotations as a JSON object, for referrers answers.
    pub annotations: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("registry database: {0}")]
pub struct DbError(#[from] rusqlite::Error);

pub struct Storage {
    root: PathBuf,
    content: ContentStore,
    db: Mutex<Connection>,
}

impl Storage {
    /// Opens (creating if needed) the registry state under `root`.
    pub fn open(root: &Path) -> Result<Storage, ServerError> {
        std::fs::create_dir_all(root).map_err(|source| ServerError::Io {
            path: root.to_owned(),
            source,
        })?;
        let content = ContentStore::open(root)?;
        let path = root.join("registry.db");
        let db_err = |source| ServerError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(ServerError::Config {
                path,
                message: format!(
                    "schema version {version} is newer than this skiff knows ({SCHEMA_VERSION})"
                ),
            });
        }
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        Ok(Storage {
            root: root.to_owned(),
            content,
            db: Mutex::new(conn),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change behind (each
        // change is a transaction), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `digest` is linked to `repo` and present on disk.
    pub fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool, DbError> {
        let linked = self
            .db()
            .query_row(
                "SELECT 1 FROM blob_links WHERE repo = ?1 AND digest = ?2",
                params![repo, digest.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        Ok(linked && self.content.exists(digest))
    }

    /// Whether any repository holds `digest` (and it is on disk).
    pub fn blob_linked_anywhere(&self, digest: &Digest) -> Result<bool, DbError> {
        let linked = self
            .db()
            .query_row(
                "SELECT 1 FROM blob_links WHERE digest = ?1 LIMIT 1",
                params![digest.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        Ok(linked && self.content.exists(digest))
    }

    /// Links a committed blob into a repository (creating the repository).
    pub fn link_blob(&self, repo: &str, digest: &Digest) -> Result<(), DbError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("INSERT OR IGNORE INTO repos (name) VALUES (?1)", [repo])?;
        tx.execute(
            "INSERT OR IGNORE INTO blob_links (repo, digest) VALUES (?1, ?2)",
            params![repo, digest.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a blob from a repository. False if it was not there.
    pub fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool, DbError> {
        let n = self.db().execute(
            "DELETE FROM blob_links WHERE repo = ?1 AND digest = ?2",
            params![repo, digest.to_string()],
        )?;
        Ok(n > 0)
    }

    pub fn repo_exists(&self, repo: &str) -> Result<bool, DbError> {
        Ok(self
            .db()
            .query_row("SELECT 1 FROM repos WHERE name = ?1", [repo], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records a manifest (whose bytes are already a committed blob) and, if given, points a
    /// tag at it, in one transaction.
    pub fn put_manifest(
        &self,
        repo: &str,
        row: &ManifestRow,
        tag: Option<&str>,
    ) -> Result<(), DbError> {
        let digest = row.digest.to_string();
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("INSERT OR IGNORE INTO repos (name) VALUES (?1)", [repo])?;
        tx.execute(
            "INSERT OR IGNORE INTO blob_links (repo, digest) VALUES (?1, ?2)",
            params![repo, digest],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO manifests
                (repo, digest, media_type, size, subject, artifact_type, annotations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                repo,
                digest,
                row.media_type,
                row.size as i64,
                row.subject,
                row.artifact_type,
                row.annotations
            ],
        )?;
        if let Some(tag) = tag {
            tx.execute(
                "INSERT OR REPLACE INTO tags (repo, tag, digest) VALUES (?1, ?2, ?3)",
                params![repo, tag, digest],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The manifest a tag or digest names in a repository.
    pub fn resolve(&self, repo: &str, reference: &str) -> Result<Option<ManifestRow>, DbError> {
        let db = self.db();
        let digest: Option<String> = if reference.contains(':') {
            Some(reference.to_owned())
        } else {
            db.query_row(
                "SELECT digest FROM tags WHERE repo = ?1 AND tag = ?2",
                params![repo, reference],
                |r| r.get(0),
            )
            .optional()?
        };
        let Some(digest) = digest else {
            return Ok(None);
        };
        let row = db
            .query_row(
                "SELECT digest, media_type, size, subject, artifact_type, annotations
                 FROM manifests WHERE repo = ?1 AND digest = ?2",
                params![repo, digest],
                row_to_manifest,
            )
            .optional()?;
        Ok(row.flatten())
    }

    /// Deletes a manifest and every tag that points at it. False if it was not there.
    pub fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, DbError> {
        let digest = digest.to_string();
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute(
            "DELETE FROM manifests WHERE repo = ?1 AND digest = ?2",
            params![repo, digest],
        )?;
        if n > 0 {
            tx.execute(
                "DELETE FROM tags WHERE repo = ?1 AND digest = ?2",
                params![repo, digest],
            )?;
            tx.execute(
                "DELETE FROM blob_links WHERE repo = ?1 AND digest = ?2",
                params![repo, digest],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// Deletes a tag (not the manifest). False if it was not there.
    pub fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, DbError> {
        let n = self.db().execute(
            "DELETE FROM tags WHERE repo = ?1 AND tag = ?2",
            params![repo, tag],
        )?;
        Ok(n > 0)
    }

    /// Up to `n` tags after `last` in byte order, and whether more follow.
    pub fn tags(&self, repo: &str, last: &str, n: usize) -> Result<(Vec<String>, bool), DbError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT tag FROM tags WHERE repo = ?1 AND tag > ?2 ORDER BY tag LIMIT ?3",
        )?;
        let mut out: Vec<String> = stmt
            .query_map(params![repo, last, n as i64 + 1], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let more = out.len() > n;
        out.truncate(n);
        Ok((out, more))
    }

    /// Up to `n` repositories (those holding at least one manifest) after `last`, and whether
    /// more follow.
    pub fn catalog(&self, last: &str, n: usize) -> Result<(Vec<String>, bool), DbError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT name FROM repos WHERE name > ?1
               AND EXISTS (SELECT 1 FROM manifests WHERE repo = name)
             ORDER BY name LIMIT ?2",
        )?;
        let mut out: Vec<String> = stmt
            .query_map(params![last, n as i64 + 1], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let more = out.len() > n;
        out.truncate(n);
        Ok((out, more))
    }

    /// Repositories whose name contains `term` (case-insensitively): how many, and the first
    /// `n` of them in name order.
    pub fn search(&self, term: &str, n: usize) -> Result<(usize, Vec<String>), DbError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT name FROM repos
             WHERE EXISTS (SELECT 1 FROM manifests WHERE repo = name)
             ORDER BY name",
        )?;
        let term = term.to_lowercase();
        let all: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|name| name.contains(&term))
            .collect();
        let total = all.len();
        Ok((total, all.into_iter().take(n).collect()))
    }

    /// Manifests of `repo` whose subject is `subject`, in digest order.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<ManifestRow>, DbError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT digest, media_type, size, subject, artifact_type, annotations
             FROM manifests WHERE repo = ?1 AND subject = ?2 ORDER BY digest",
        )?;
        let rows = stmt
            .query_map(params![repo, subject.to_string()], row_to_manifest)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Every manifest of every repository: (repository, digest).
    pub fn all_manifests(&self) -> Result<Vec<(String, Digest)>, DbError> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT repo, digest FROM manifests ORDER BY repo, digest")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(repo, d)| d.parse().ok().map(|d| (repo, d)))
            .collect())
    }

    /// Removes every repository link to the given blobs (after GC deleted them).
    pub fn unlink_everywhere(&self, digests: &[Digest]) -> Result<(), DbError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut stmt = tx.prepare("DELETE FROM blob_links WHERE digest = ?1")?;
            for d in digests {
                stmt.execute([d.to_string()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// A row of `manifests`; `None` when the stored digest does not parse (never written by us).
fn row_to_manifest(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<ManifestRow>> {
    let digest: String = r.get(0)?;
    let Ok(digest) = digest.parse() else {
        return Ok(None);
    };
    Ok(Some(ManifestRow {
        digest,
        media_type: r.get(1)?,
        size: r.get::<_, i64>(2)?.max(0) as u64,
        subject: r.get(3)?,
        artifact_type: r.get(4)?,
        annotations: r.get(5)?,
    }))
}

impl From<DbError> for super::errors::ApiError {
    fn from(e: DbError) -> Self {
        super::errors::ApiError::internal(e)
    }
}
