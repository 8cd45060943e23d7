//! Snapshot metadata (`metadata.db` in each driver's directory) and the numeric directories.
//!
//! Directory names are the row IDs, so the overlay `lowerdir=` list of a deep image stays short.
//! A row is inserted before its directory is made and deleted after the directory is gone, so
//! a crash leaves at worst a row without a directory (tolerated on removal) or a directory
//! without a row (removed by `cleanup_orphans`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::snapshotter::{io_err, Info, Kind, SnapshotError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    parent TEXT REFERENCES snapshots(key),
    kind TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);";

pub(crate) struct SnapshotDirs {
    root: PathBuf,
    conn: Connection,
}

impl SnapshotDirs {
    pub(crate) fn open(root: &Path) -> Result<Self, SnapshotError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let conn = Connection::open(root.join("metadata.db"))?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SnapshotDirs {
            root: root.to_owned(),
            conn,
        })
    }

    pub(crate) fn dir(&self, id: i64) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn write(&self) -> Result<Transaction<'_>, SnapshotError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Inserts a new snapshot row and creates its directory; returns the info and the
    /// parent chain (nearest parent first).
    pub(crate) fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<(Info, Vec<Info>), SnapshotError> {
        let tx = self.write()?;
        if get(&tx, key)?.is_some() {
            return Err(SnapshotError::AlreadyExists(key.to_owned()));
        }
        let chain = match parent {
            Some(p) => {
                let info = get(&tx, p)?.ok_or_else(|| SnapshotError::NotFound(p.to_owned()))?;
                if info.kind != Kind::Committed {
                    return Err(SnapshotError::WrongKind {
                        key: p.to_owned(),
                        kind: info.kind.as_str(),
                        expected: "committed",
                    });
                }
                chain_of(&tx, info)?
            }
            None => Vec::new(),
        };
        let created = time::OffsetDateTime::now_utc().unix_timestamp();
        tx.execute(
            "INSERT INTO snapshots (key, parent, kind, created) VALUES (?1, ?2, ?3, ?4)",
            params![key, parent, kind.as_str(), created],
        )?;
        let id = tx.last_insert_rowid();
        let dir = self.dir(id);
        // A directory left by a crash between mkdir and a rolled-back insert may exist.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        fs::create_dir_all(dir.join("fs")).map_err(io_err(&dir))?;
        tx.commit()?;
        Ok((
            Info {
                key: key.to_owned(),
                parent: parent.map(str::to_owned),
                kind,
                id,
                created,
            },
            chain,
        ))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Info>, SnapshotError> {
        get(&self.conn, key)
    }

    pub(crate) fn require(&self, key: &str) -> Result<Info, SnapshotError> {
        self.get(key)?
            .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))
    }

    /// The info of `key` and its ancestors (nearest parent first).
    pub(crate) fn with_chain(&self, key: &str) -> Result<(Info, Vec<Info>), SnapshotError> {
        let info = self.require(key)?;
        let chain = match &info.parent {
            Some(p) => chain_of(&self.conn, self.require(p)?)?,
            None => Vec::new(),
        };
        Ok((info, chain))
    }

    /// Renames the active `key` to the committed `name` (same directory).
    pub(crate) fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        let tx = self.write()?;
        let info = get(&tx, key)?.ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
        if info.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                kind: info.kind.as_str(),
                expected: "active",
            });
        }
        if get(&tx, name)?.is_some() {
            return Err(SnapshotError::AlreadyExists(name.to_owned()));
        }
        tx.execute(
            "UPDATE snapshots SET key = ?1, kind = 'committed' WHERE key = ?2",
            params![name, key],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let info = self.require(key)?;
        let children: usize = self.conn.query_row(
            "SELECT COUNT(*) FROM snapshots WHERE parent = ?1",
            [key],
            |r| r.get(0),
        )?;
        if children > 0 {
            return Err(SnapshotError::HasChildren {
                key: key.to_owned(),
                children,
            });
        }
        let dir = self.dir(info.id);
        // Rename first so a crash mid-delete leaves an orphan directory, never a half-deleted
        // snapshot that metadata still calls whole.
        let doomed = self.root.join(format!("rm-{}", info.id));
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SnapshotError::Io {
                    path: dir,
                    source: e,
                })
            }
        }
        self.conn
            .execute("DELETE FROM snapshots WHERE key = ?1", [key])?;
        if doomed.exists() {
            fs::remove_dir_all(&doomed).map_err(io_err(&doomed))?;
        }
        Ok(())
    }

    pub(crate) fn walk(&self) -> Result<Vec<Info>, SnapshotError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, parent, kind, id, created FROM snapshots ORDER BY id")?;
        let rows = stmt
            .query_map([], row_to_info)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Removes directories that no row names (left by a crash mid-create or mid-remove).
    pub(crate) fn cleanup_orphans(&self) -> Result<usize, SnapshotError> {
        let known: std::collections::HashSet<i64> =
            self.walk()?.into_iter().map(|i| i.id).collect();
        let mut removed = 0;
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let path = entry.map_err(io_err(&self.root))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let orphan = match name.parse::<i64>() {
                Ok(id) => !known.contains(&id),
                Err(_) => name.starts_with("rm-"),
            };
            if orphan && path.is_dir() {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn get(conn: &Connection, key: &str) -> Result<Option<Info>, SnapshotError> {
    Ok(conn
        .query_row(
            "SELECT key, parent, kind, id, created FROM snapshots WHERE key = ?1",
            [key],
            row_to_info,
        )
        .optional()?)
}

fn chain_of(conn: &Connection, first: Info) -> Result<Vec<Info>, SnapshotError> {
    let mut chain = vec![first];
    while let Some(parent) = chain.last().and_then(|i| i.parent.clone()) {
        chain.push(get(conn, &parent)?.ok_or(SnapshotError::NotFound(parent))?);
    }
    Ok(chain)
}

fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<Info> {
    let kind: String = r.get(2)?;
    Ok(Info {
        key: r.get(0)?,
        parent: r.get(1)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Active),
        id: r.get(3)?,
        created: r.get(4)?,
    })
}

/// Sums the apparent sizes of the files under `dir`, counting each hardlinked inode once,
/// as docker's `directory.Size` does.
pub(crate) fn dir_size(dir: &Path) -> Result<u64, SnapshotError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SnapshotError::Io { path: d, source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&d))?;
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.nlink() <= 1 || seen.insert((meta.dev(), meta.ino())) {
                total += meta.size();
            }
        }
    }
    Ok(total)
}
