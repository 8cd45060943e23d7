//! The persistent build cache: `build-cache.db` under the root (SQLite, WAL), owned by the
//! build. One row per step result: its key, the image config after the step, the layers of
//! that image, and the key's input (for `--explain-cache`). Blobs and snapshots are not
//! owned here: a row whose blobs were garbage-collected is simply a miss.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use skiff_build::context::{stat_key, ContentCache};
use skiff_image::store::LayerRecord;
use skiff_image::Digest;

const SCHEMA_VERSION: i64 = 1;

pub struct CacheDb {
    conn: Connection,
}

/// A cached step result.
pub struct Entry {
    pub config: Vec<u8>,
    pub layers: Vec<LayerRecord>,
    /// When it was last used (seconds since the epoch).
    pub last_used: i64,
}

/// The stored input of a key (what `--explain-cache` compares).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredInput {
    pub parent: String,
    pub instruction: String,
    pub build_args: Vec<String>,
    pub sources: Vec<String>,
    pub execution: Vec<String>,
    pub source_date_epoch: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct StoredLayer {
    diff_id: String,
    blob: String,
    media_type: String,
    blob_size: u64,
    size: u64,
}

/// One entry's identity and config (see [`CacheDb::configs`]).
pub struct StepConfig {
    pub key: String,
    pub parent: String,
    pub config: Vec<u8>,
}

fn decode_layers(text: &str) -> Result<Vec<LayerRecord>> {
    let stored: Vec<StoredLayer> = serde_json::from_str(text)?;
    let mut out = Vec::with_capacity(stored.len());
    for l in stored {
        out.push(LayerRecord {
            diff_id: l.diff_id.parse::<Digest>()?,
            blob: l.blob.parse::<Digest>()?,
            media_type: l.media_type,
            blob_size: l.blob_size,
            size: l.size,
        });
    }
    Ok(out)
}

/// Runs `f` again while SQLite says the database is busy. Two builds that create the
/// database at once race to switch it to WAL and create its tables, and SQLite answers
/// some of those lock waits with SQLITE_BUSY at once instead of calling the busy handler.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl CacheDb {
    pub fn open(root: &Path) -> Result<CacheDb> {
        let path = root.join("build-cache.db");
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} was written by a newer skiff (schema {version})",
                path.display()
            );
        }
        {
            // Idempotent: tables added within schema 1 appear in older files too.
            retry_busy(|| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS steps (
                    key TEXT PRIMARY KEY,
                    parent TEXT NOT NULL,
                    instruction TEXT NOT NULL,
                    input TEXT NOT NULL,
                    config BLOB NOT NULL,
                    layers TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    created INTEGER NOT NULL,
                    last_used INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS steps_parent ON steps(parent);
                 CREATE INDEX IF NOT EXISTS steps_instruction ON steps(instruction);
                 CREATE TABLE IF NOT EXISTS file_digests (
                    path TEXT PRIMARY KEY,
                    stat TEXT NOT NULL,
                    digest TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS copy_mtimes (
                    key TEXT PRIMARY KEY,
                    mtimes TEXT NOT NULL
                 );
                 PRAGMA user_version = 1;",
                )
            })?;
        }
        Ok(CacheDb { conn })
    }

    pub fn get(&self, key: &str) -> Result<Option<Entry>> {
        let row: Option<(Vec<u8>, String, i64)> = self
            .conn
            .query_row(
                "SELECT config, layers, last_used FROM steps WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((config, layers, last_used)) = row else {
            return Ok(None);
        };
        Ok(Some(Entry {
            config,
            layers: decode_layers(&layers)?,
            last_used,
        }))
    }

    /// Marks entries as used now (for pruning by age), in one transaction.
    pub fn touch(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare("UPDATE steps SET last_used = ?2 WHERE key = ?1")?;
            let now = skiff_image::store::unix_now();
            for k in keys {
                stmt.execute(params![k, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn put(
        &self,
        key: &str,
        input: &StoredInput,
        config: &[u8],
        layers: &[LayerRecord],
        own_size: u64,
    ) -> Result<()> {
        let stored: Vec<StoredLayer> = layers
            .iter()
            .map(|l| StoredLayer {
                diff_id: l.diff_id.to_string(),
                blob: l.blob.to_string(),
                media_type: l.media_type.clone(),
                blob_size: l.blob_size,
                size: l.size,
            })
            .collect();
        let now = skiff_image::store::unix_now();
        self.conn.execute(
            "INSERT OR REPLACE INTO steps (key, parent, instruction, input, config, layers, size, created, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![
                key,
                input.parent,
                input.instruction,
                serde_json::to_string(input)?,
                config,
                serde_json::to_string(&stored)?,
                own_size as i64,
                now
            ],
        )?;
        Ok(())
    }

    /// The most recently used input recorded for the same parent (else the same
    /// instruction): what this step's input is compared with to explain a miss.
    pub fn closest(&self, parent: &str, instruction: &str) -> Result<Option<StoredInput>> {
        for (sql, arg) in [
            (
                "SELECT input FROM steps WHERE parent = ?1 ORDER BY last_used DESC LIMIT 1",
                parent,
            ),
            (
                "SELECT input FROM steps WHERE instruction = ?1 ORDER BY last_used DESC LIMIT 1",
                instruction,
            ),
        ] {
            let row: Option<String> = self.conn.query_row(sql, [arg], |r| r.get(0)).optional()?;
            if let Some(text) = row {
                return Ok(Some(serde_json::from_str(&text)?));
            }
        }
        Ok(None)
    }

    /// The entries made on `parent`, most recently used first (at most `limit`): the earlier
    /// results an incremental COPY can start from.
    pub fn children(
        &self,
        parent: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredInput, Entry)>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, input, config, layers, last_used FROM steps WHERE parent = ?1
             ORDER BY last_used DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![parent, limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, input, config, layers, last_used) = row?;
            out.push((
                key,
                serde_json::from_str(&input)?,
                Entry {
                    config,
                    layers: decode_layers(&layers)?,
                    last_used,
                },
            ));
        }
        Ok(out)
    }

    /// Records the mtimes of the entries a COPY from the context copied (one per file of its
    /// source digest), which its key leaves out.
    pub fn put_mtimes(&self, key: &str, mtimes: &[(i64, i64)]) -> Result<()> {
        let text: Vec<String> = mtimes.iter().map(|(s, n)| format!("{s}.{n}")).collect();
        self.conn.execute(
            "INSERT OR REPLACE INTO copy_mtimes (key, mtimes) VALUES (?1, ?2)",
            params![key, text.join("\n")],
        )?;
        Ok(())
    }

    /// What [`CacheDb::put_mtimes`] recorded for `key`.
    pub fn mtimes(&self, key: &str) -> Result<Option<Vec<(i64, i64)>>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT mtimes FROM copy_mtimes WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        let Some(text) = text else { return Ok(None) };
        if text.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut out = Vec::new();
        for line in text.split('\n') {
            let parsed = line
                .split_once('.')
                .and_then(|(s, n)| Some((s.parse().ok()?, n.parse().ok()?)));
            match parsed {
                Some(t) => out.push(t),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// Removes every entry; returns how many and the bytes of layers they made.
    pub fn prune(&self) -> Result<(usize, u64)> {
        let size: i64 =
            self.conn
                .query_row("SELECT COALESCE(SUM(size), 0) FROM steps", [], |r| r.get(0))?;
        let n = self.conn.execute("DELETE FROM steps", [])?;
        self.conn.execute("DELETE FROM copy_mtimes", [])?;
        Ok((n, size.max(0) as u64))
    }

    /// The layer stacks of every entry (GC keeps their blobs and snapshots: the cache
    /// goes only with `builder prune`).
    pub fn all_layers(&self) -> Result<Vec<Vec<LayerRecord>>> {
        let mut stmt = self.conn.prepare("SELECT layers FROM steps")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode_layers(&row?)?);
        }
        Ok(out)
    }

    /// Every entry's key, parent key and config bytes (their digests are the ` ---> ID`s a
    /// build prints), for finding a step's image by ID.
    pub fn configs(&self) -> Result<Vec<StepConfig>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, parent, config FROM steps ORDER BY last_used DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok(StepConfig {
                key: r.get(0)?,
                parent: r.get(1)?,
                config: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Entries and the bytes of the layers they made (for `system df`).
    pub fn usage(&self) -> Result<(usize, u64)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM steps",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get::<_, i64>(1)?.max(0) as u64,
                ))
            },
        )?)
    }
}

/// File content digests by path and stat, read from the database once per build for the
/// context directory and written back in one transaction.
pub struct FileDigests {
    known: RefCell<HashMap<String, (String, String)>>,
    added: RefCell<Vec<(String, String, String)>>,
}

impl FileDigests {
    /// Loads what is recorded under `dir`.
    pub fn load(db: &CacheDb, dir: &Path) -> Result<FileDigests> {
        let prefix = format!("{}/", dir.display());
        let mut stmt = db.conn.prepare(
            "SELECT path, stat, digest FROM file_digests WHERE path >= ?1 AND path < ?2",
        )?;
        let upper = format!("{}0", dir.display());
        let rows = stmt.query_map(params![prefix, upper], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut known = HashMap::new();
        for row in rows {
            let (p, st, d) = row?;
            known.insert(p, (st, d));
        }
        Ok(FileDigests {
            known: RefCell::new(known),
            added: RefCell::new(Vec::new()),
        })
    }

    /// Writes the digests computed during this build.
    pub fn flush(&self, db: &CacheDb) -> Result<()> {
        let added = std::mem::take(&mut *self.added.borrow_mut());
        if added.is_empty() {
            return Ok(());
        }
        let tx = db.conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO file_digests (path, stat, digest) VALUES (?1, ?2, ?3)",
            )?;
            for (p, st, d) in &added {
                stmt.execute(params![p, st, d])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl ContentCache for FileDigests {
    fn get(&self, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let known = self.known.borrow();
        let (st, d) = known.get(path.to_str()?)?;
        (*st == stat_key(meta)).then(|| d.clone())
    }

    fn put(&self, path: &Path, meta: &std::fs::Metadata, hex: &str) {
        let Some(p) = path.to_str() else { return };
        let st = stat_key(meta);
        self.known
            .borrow_mut()
            .insert(p.to_owned(), (st.clone(), hex.to_owned()));
        self.added
            .borrow_mut()
            .push((p.to_owned(), st, hex.to_owned()));
    }
}

impl CacheDb {
    /// Every entry as `system df -v` lists it, least recently used first (docker's order).
    pub fn df_records(&self) -> Result<Vec<crate::ops::df::CacheRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, parent, instruction, layers, size, created, last_used FROM steps
             ORDER BY last_used, key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, parent, instruction, layers, size, created, last_used) = row?;
            out.push(crate::ops::df::CacheRecord {
                key,
                parent,
                instruction,
                layers: decode_layers(&layers)?,
                size: size.max(0) as u64,
                created,
                last_used,
            });
        }
        Ok(out)
    }
}
