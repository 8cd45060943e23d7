//! The container store: an index in SQLite (`containers.db`: id, unique name, image, created)
//! and one directory per container under `containers/<id>/` holding its record
//! (`container.json`), its state (`state.json`), its bundle (`config.json`), the files it
//! sees as /etc/hostname, /etc/hosts and /etc/resolv.conf, and its log (`<id>-json.log`).
//!
//! Several skiff processes (commands and monitors) use the store at once. The index follows
//! skiff-image's pattern (WAL, busy timeout, `BEGIN IMMEDIATE` writes), so the name check and
//! the insert are one transaction. Files are written temp + fsync + rename, and the state is
//! changed only by [`ContainerStore::update_state`], which holds the container's flock
//! around read-modify-write, so a monitor and a `stop` never lose each other's changes.
//!
//! This store is pure bookkeeping: it never starts or signals anything. Noticing a dead
//! monitor and killing what it left is `super::reconcile`'s job.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

pub use super::model::*;
use crate::ops::engine::FileLock;
use crate::ops::error::OpError;

/// Each entry moves the schema from version `index` to `index + 1`; never edit a shipped one.
const MIGRATIONS: &[&str] = &["CREATE TABLE containers (
        id TEXT PRIMARY KEY,          -- 64 hex
        name TEXT NOT NULL UNIQUE,    -- without docker's leading '/'
        image_id TEXT NOT NULL,       -- sha256:<hex>
        created TEXT NOT NULL         -- RFC 3339 nano; sorts as time
     );
     CREATE INDEX containers_image ON containers(image_id);"];

/// The file names inside a container's directory.
pub const RECORD_FILE: &str = "container.json";
pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";
pub const HOSTNAME_FILE: &str = "hostname";
pub const HOSTS_FILE: &str = "hosts";
pub const RESOLV_CONF_FILE: &str = "resolv.conf";
/// The monitor's unix socket that `run`, `attach` and `start -a` connect to.
pub const ATTACH_SOCKET: &str = "attach.sock";

/// One row of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub created: String,
}

pub struct ContainerStore {
    conn: Connection,
    dir: PathBuf,
}

fn sql_err(e: rusqlite::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("container metadata database")
}

impl ContainerStore {
    /// Opens `root/containers.db` and `root/containers/`, creating them as needed.
    pub fn open(root: &Path) -> Result<ContainerStore> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conn = Connection::open(root.join("containers.db")).map_err(sql_err)?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(sql_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        let store = ContainerStore { conn, dir };
        store.migrate()?;
        Ok(store)
    }

    fn write(&self) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql_err)
    }

    fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if version == known {
            return Ok(());
        }
        let tx = self.write()?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if version > known {
            anyhow::bail!(
                "container metadata database is newer (schema {version}) than this skiff understands ({known})"
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(sql_err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)
    }

    /// The directory of container `id` (also its OCI bundle).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The container's json-file log.
    pub fn log_path(&self, id: &str) -> PathBuf {
        Self::log_path_in(&self.dir(id), id)
    }

    /// The json-file log in the container directory `dir`.
    pub fn log_path_in(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}-json.log"))
    }

    /// Registers a new container: its directory, record and initial state, then its index
    /// row. A name in use fails with docker's conflict message and leaves nothing behind.
    pub fn create(&self, c: &Container, state: &State) -> Result<()> {
        let dir = self.dir(&c.id);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let result = (|| -> Result<()> {
            write_json(&dir.join(RECORD_FILE), c)?;
            write_json(&dir.join(STATE_FILE), state)?;
            let tx = self.write()?;
            if let Some(other) = id_named(&tx, &c.name)? {
                return Err(name_conflict(&c.name, &other).into());
            }
            tx.execute(
                "INSERT INTO containers (id, name, image_id, created) VALUES (?1, ?2, ?3, ?4)",
                params![c.id, c.name, c.image, c.created],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    /// Whether `name` is taken, and by which container.
    pub fn id_of_name(&self, name: &str) -> Result<Option<String>> {
        id_named(&self.conn, name)
    }

    /// Finds a container from what a user typed, in docker's order: full id, exact name
    /// (with or without the leading `/`), unique id prefix. `Ok(None)` when nothing matches;
    /// an ambiguous prefix is an error.
    pub fn lookup(&self, input: &str) -> Result<Option<Container>> {
        match self.resolve_id(input)? {
            Some(id) => self.record(&id),
            None => Ok(None),
        }
    }

    /// Like [`Self::lookup`], failing with docker's `No such container: x`.
    pub fn get(&self, input: &str) -> Result<Container> {
        self.lookup(input)?
            .ok_or_else(|| no_such_container(input).into())
    }

    /// The id a user's input names (see [`Self::lookup`]).
    pub fn resolve_id(&self, input: &str) -> Result<Option<String>> {
        if input.is_empty() {
            return Ok(None);
        }
        if input.len() == 64 && is_hex(input) && self.exists(input)? {
            return Ok(Some(input.to_owned()));
        }
        let name = input.strip_prefix('/').unwrap_or(input);
        if let Some(id) = id_named(&self.conn, name)? {
            return Ok(Some(id));
        }
        if !is_hex(input) {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM containers WHERE substr(id, 1, ?2) = ?1 LIMIT 2")
            .map_err(sql_err)?;
        let ids: Vec<String> = stmt
            .query_map(params![input, input.len() as i64], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        match ids.as_slice() {
            [] => Ok(None),
            [id] => Ok(Some(id.clone())),
            _ => Err(
                OpError::invalid(format!("multiple IDs found with provided prefix: {input}"))
                    .into(),
            ),
        }
    }

    fn exists(&self, id: &str) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM containers WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(sql_err)
    }

    /// Reads the record of container `id`; `None` if it is not (or no longer) there.
    pub fn record(&self, id: &str) -> Result<Option<Container>> {
        let path = self.dir(id).join(RECORD_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        }
    }

    /// Rewrites the record of an existing container (after a rename, a resolved mount).
    pub fn save(&self, c: &Container) -> Result<()> {
        write_json(&self.dir(&c.id).join(RECORD_FILE), c)
    }

    /// The index, newest first (as `ps` lists).
    pub fn index(&self) -> Result<Vec<IndexEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, name, image_id, created FROM containers ORDER BY created DESC, id",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(IndexEntry {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    image_id: r.get(2)?,
                    created: r.get(3)?,
                })
            })
            .map_err(sql_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err)?;
        Ok(rows)
    }

    /// Every container's record, newest first. Rows whose directory is gone (a crash
    /// between the two) are skipped.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for e in self.index()? {
            if let Some(c) = self.record(&e.id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The ids of the containers created from image `image_id` (`sha256:<hex>`).
    pub fn using_image(&self, image_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM containers WHERE image_id = ?1 ORDER BY created DESC, id",
            )
            .map_err(sql_err)?;
        let ids = stmt
            .query_map([image_id], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(sql_err)?;
        Ok(ids)
    }

    /// The container's state as last written (without noticing a dead monitor: see
    /// `super::reconcile`).
    pub fn state(&self, id: &str) -> Result<State> {
        read_state(&self.dir(id)).map_err(|e| missing_as_no_such(e, id))
    }

    /// Reads the state, lets `f` change it, and writes it back, all under the container's
    /// lock. `f` returning an error leaves the state as it was.
    pub fn update_state<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<(State, T)> {
        update_state_in(&self.dir(id), f).map_err(|e| missing_as_no_such(e, id))
    }

    /// Renames container `id` to `new_name` (docker's conflict message if it is taken).
    pub fn rename(&self, id: &str, new_name: &str) -> Result<()> {
        let tx = self.write()?;
        if let Some(other) = id_named(&tx, new_name)? {
            return Err(name_conflict(new_name, &other).into());
        }
        tx.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, new_name],
        )
        .map_err(sql_err)?;
        let mut c = self.record(id)?.ok_or_else(|| no_such_container(id))?;
        c.name = new_name.to_owned();
        self.save(&c)?;
        tx.commit().map_err(sql_err)
    }

    /// Forgets container `id`: its index row, then its directory. The caller has already
    /// stopped it and released its snapshot.
    pub fn remove(&self, id: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute("DELETE FROM containers WHERE id = ?1", [id])
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", dir.display()))),
        }
    }
}

/// Reads the state file of the container directory `dir` (the monitor uses these
/// directory-level functions: it never opens the database while the container runs).
pub fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Ok(s),
        // Emptied by a power loss (the file is not fsynced): nothing can be running.
        Err(_) if bytes.is_empty() => Ok(State {
            status: Status::Exited,
            exit_code: super::reconcile::UNKNOWN_EXIT,
            error: "the container's state was lost".to_owned(),
            ..State::default()
        }),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

/// Reads the record in the container directory `dir`.
pub fn read_record(dir: &Path) -> Result<Container> {
    let path = dir.join(RECORD_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// The lock of the container directory `dir`.
fn lock_dir(dir: &Path) -> Result<FileLock> {
    if !dir.is_dir() {
        return Err(
            anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
                .context(format!("{} does not exist", dir.display())),
        );
    }
    FileLock::acquire(dir, LOCK_FILE)
}

/// Read-modify-write of the state in `dir` under its lock (see
/// [`ContainerStore::update_state`]).
pub fn update_state_in<T>(
    dir: &Path,
    f: impl FnOnce(&mut State) -> Result<T>,
) -> Result<(State, T)> {
    let _lock = lock_dir(dir)?;
    let mut state = read_state(dir)?;
    let out = f(&mut state)?;
    write_json(&dir.join(STATE_FILE), &state)?;
    Ok((state, out))
}

/// A path for the unix socket `name` in the directory `dir` that fits `sun_path` (108
/// bytes): the path itself when short enough, else `/proc/self/fd/<n>/<name>` through a
/// descriptor of `dir`, which must then stay open while the path is used.
pub fn socket_path(dir: &Path, name: &str) -> Result<(Option<std::os::fd::OwnedFd>, PathBuf)> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok((None, full));
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let short = PathBuf::from(format!(
        "/proc/self/fd/{}/{name}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ));
    Ok((Some(fd), short))
}

/// A missing container file means the container is gone.
fn missing_as_no_such(e: anyhow::Error, id: &str) -> anyhow::Error {
    let missing = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    });
    if missing {
        no_such_container(id).into()
    } else {
        e
    }
}

fn id_named(conn: &Connection, name: &str) -> Result<Option<String>> {
    conn.query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .map_err(sql_err)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// docker's `No such container: x`.
pub fn no_such_container(input: &str) -> OpError {
    OpError::not_found(format!("No such container: {input}"))
}

/// docker's message for a name already taken.
pub fn name_conflict(name: &str, id: &str) -> OpError {
    OpError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// Writes `value` as JSON to `path` atomically (see [`write_file`]).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value)?;
    write_file(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so that a reader
/// (another command, the monitor) sees the old content or the new, never a torn file.
///
/// Unlike the image store's files these are not fsynced: they describe processes, which a
/// power loss ends anyway, and every start rewrites them. Syncing the five or six files a
/// `run` writes costs about 4 ms each here, more than the rest of skiff's own work for a
/// container; the index in `containers.db` keeps SQLite's guarantees. A file lost to a
/// crash reads as a container that exited (see [`read_state`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
    }
    Ok(())
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh container id: 32 random bytes as 64 hex characters. Like docker, an id that
/// would read as a number (all digits) is drawn again, so that a short id is never mistaken
/// for one.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut f = fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    loop {
        let mut bytes = [0u8; 32];
        f.read_exact(&mut bytes).context("reading /dev/urandom")?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// Now, as docker writes times: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339_nano(time::OffsetDateTime::now_utc())
}

/// A time as Go's `time.RFC3339Nano` prints it (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let base = t
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    let nanos = t.nanosecond();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Parses an RFC 3339 time as docker writes them; `None` for Go's zero time or garbage.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    if s.is_empty() || s.starts_with("0001-") {
        return None;
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, name: &str) -> Container {
        Container {
            id: id.to_owned(),
            name: name.to_owned(),
            image: "sha256:aa".to_owned(),
            image_ref: "busybox".to_owned(),
            created: now_rfc3339(),
            path: "sh".to_owned(),
            args: vec![],
            config: Config::default(),
            host_config: HostConfig::default(),
            snapshot_key: id.to_owned(),
            driver: "vfs".to_owned(),
            rootfs: PathBuf::from("/x"),
            runtime: "runc".to_owned(),
            mounts: vec![],
        }
    }

    #[test]
    fn lookup_by_id_name_and_prefix_with_docker_conflicts() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(tmp.path()).unwrap();
        let a = format!("abc1{}", "0".repeat(60));
        let b = format!("abc2{}", "0".repeat(60));
        store.create(&sample(&a, "one"), &State::default()).unwrap();
        store.create(&sample(&b, "two"), &State::default()).unwrap();
        assert_eq!(store.get(&a).unwrap().name, "one");
        assert_eq!(store.get("two").unwrap().id, b);
        assert_eq!(store.get("/two").unwrap().id, b);
        assert_eq!(store.get("abc1").unwrap().id, a);
        assert!(store.get("abc").is_err());
        let e = store.get("nope").unwrap_err().to_string();
        assert_eq!(e, "No such container: nope");
        let c = format!("abc3{}", "0".repeat(60));
        let e = store
            .create(&sample(&c, "one"), &State::default())
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "Conflict. The container name \"/one\" is already in use by container \"abc1"
            ),
            "{e}"
        );
        assert!(!store.dir(&c).exists());
        assert_eq!(store.using_image("sha256:aa").unwrap().len(), 2);
        store.rename(&a, "uno").unwrap();
        assert_eq!(store.get("uno").unwrap().id, a);
        store
            .update_state(&a, |s| {
                s.set_status(Status::Exited);
                s.exit_code = 3;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.state(&a).unwrap().exit_code, 3);
        store.remove(&a).unwrap();
        assert!(store.lookup(&a).unwrap().is_none());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn times_print_like_go() {
        let t = time::macros::datetime!(2024-01-02 03:04:05.120 UTC);
        assert_eq!(rfc3339_nano(t), "2024-01-02T03:04:05.12Z");
        let t = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        assert_eq!(rfc3339_nano(t), "2024-01-02T03:04:05Z");
        assert!(parse_time(ZERO_TIME).is_none());
        assert_eq!(
            parse_time("2024-01-02T03:04:05.12Z"),
            Some(time::macros::datetime!(2024-01-02 03:04:05.120 UTC))
        );
    }

    #[test]
    fn ids_are_64_hex_and_not_numeric() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(is_hex(&id));
    }
}
