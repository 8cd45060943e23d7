//! The volume store: one directory per volume under `--root/volumes/<name>/`, holding the
//! data (`_data`, what containers see), the metadata (`volume.json`, written temp + fsync +
//! rename) and the containers that use it (`refs/<container id>`).
//!
//! A volume is created by preparing its whole directory under a temporary name and renaming
//! it into place, so a volume either exists complete or not at all, and two processes
//! creating the same name end with one volume. Everything that changes which volumes exist or
//! who uses them holds the `locks/volumes` flock, so `volume rm` cannot race a `run` that is
//! starting to use the volume.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::ops::engine::{Engine, FileLock};
use crate::ops::error::OpError;

/// The only volume driver skiff has, as docker's built-in one is called.
pub const LOCAL_DRIVER: &str = "local";

/// Options the local driver accepts (`-o type=tmpfs -o device=tmpfs -o o=size=1m`).
const LOCAL_OPTIONS: &[&str] = &["type", "device", "o", "size"];

/// A volume as `volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    /// `null` when the volume has none, as docker prints it.
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: PathBuf,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Scope")]
    pub scope: String,
}

impl Volume {
    /// The volume's labels (empty when it has none).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }

    /// The driver options it was created with (empty when none).
    pub fn options(&self) -> BTreeMap<String, String> {
        self.options.clone().unwrap_or_default()
    }

    /// True when the options ask for a filesystem to be mounted on the volume (`-o type=`).
    pub fn needs_mount(&self) -> bool {
        self.options().contains_key("type")
    }
}

/// What `volume create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// None: a random 64-hex name (an anonymous volume when a container asks for it).
    pub name: Option<String>,
    /// None means "local".
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// How a container uses a volume, recorded in the volume's `refs/<container id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Named by the user (`-v name:/x`, `--mount src=name`, `--volumes-from`).
    Named,
    /// Created for this container (an image VOLUME, `-v /x`): `rm -v` removes it.
    Anonymous,
}

impl Usage {
    fn as_str(self) -> &'static str {
        match self {
            Usage::Named => "named",
            Usage::Anonymous => "anonymous",
        }
    }
}

/// `root/volumes`.
pub fn volumes_dir(engine: &Engine) -> PathBuf {
    engine.root().join("volumes")
}

fn volume_dir(engine: &Engine, name: &str) -> PathBuf {
    volumes_dir(engine).join(name)
}

/// Holds the lock that serializes changes to the set of volumes and their users.
pub fn lock(engine: &Engine) -> Result<FileLock> {
    FileLock::acquire(&engine.lock_dir()?, "volumes")
}

/// Checks a volume name as docker's local driver does.
pub fn validate_name(name: &str) -> Result<(), OpError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let ok_first = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok_chars || !ok_first {
        return Err(OpError::invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if name.len() < 2 {
        return Err(OpError::invalid(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    Ok(())
}

fn validate_options(name: &str, opts: &BTreeMap<String, String>) -> Result<(), OpError> {
    for key in opts.keys() {
        if !LOCAL_OPTIONS.contains(&key.as_str()) {
            return Err(OpError::invalid(format!(
                "create {name}: invalid option: {key:?}"
            )));
        }
    }
    // docker: a mount needs both a type and a device, and `o` alone means a mount too.
    let has = |k: &str| opts.contains_key(k);
    if has("type") && !has("device") || has("o") && !has("device") {
        return Err(OpError::invalid(format!(
            "create {name}: missing required option: \"device\""
        )));
    }
    if has("device") && !has("type") {
        return Err(OpError::invalid(format!(
            "create {name}: missing required option: \"type\""
        )));
    }
    Ok(())
}

/// Creates a volume, or returns the existing one of that name (docker's create is
/// idempotent and keeps the first volume's labels and options).
pub fn create(engine: &Engine, opts: &CreateOptions) -> Result<Volume> {
    let _lock = lock(engine)?;
    create_locked(engine, opts)
}

/// [`create`] for a caller that already holds [`lock`].
pub fn create_locked(engine: &Engine, opts: &CreateOptions) -> Result<Volume> {
    let name = match &opts.name {
        Some(n) => n.clone(),
        // An anonymous volume's name is drawn as docker draws it, like a container id.
        None => crate::ops::container::store::new_id()?,
    };
    let driver = opts.driver.as_deref().unwrap_or(LOCAL_DRIVER);
    if driver != LOCAL_DRIVER {
        return Err(OpError::not_found(format!(
            "create {name}: error looking up volume plugin {driver}: plugin {driver:?} not found"
        ))
        .into());
    }
    validate_name(&name)?;
    if let Some(v) = get_opt(engine, &name)? {
        return Ok(v);
    }
    validate_options(&name, &opts.options)?;
    let base = volumes_dir(engine);
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let mountpoint = absolute(&base.join(&name).join("_data"));
    let volume = Volume {
        created_at: created_now(),
        driver: LOCAL_DRIVER.to_owned(),
        labels: (!opts.labels.is_empty()).then(|| opts.labels.clone()),
        mountpoint,
        name: name.clone(),
        options: (!opts.options.is_empty()).then(|| opts.options.clone()),
        scope: "local".to_owned(),
    };
    // Prepared under a name no volume can have (volume names start with an alphanumeric).
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a directory in {}", base.display()))?;
    fs::create_dir(tmp.path().join("_data"))?;
    fs::set_permissions(
        tmp.path().join("_data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o701),
    )?;
    fs::create_dir(tmp.path().join("refs"))?;
    write_atomic(
        &tmp.path().join("volume.json"),
        &serde_json::to_vec(&volume)?,
    )?;
    let tmp_path = tmp.keep();
    let dest = base.join(&name);
    if let Err(e) = fs::rename(&tmp_path, &dest) {
        let _ = fs::remove_dir_all(&tmp_path);
        return Err(e).with_context(|| format!("creating volume {}", dest.display()));
    }
    sync_dir(&base)?;
    Ok(volume)
}

/// The creation time as docker's local driver shows it: RFC 3339, whole seconds, UTC.
fn created_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// Writes `path` as temp + fsync + rename + fsync(dir).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// The volume `name`, or docker's `get NAME: no such volume`.
pub fn get(engine: &Engine, name: &str) -> Result<Volume> {
    get_opt(engine, name)?
        .ok_or_else(|| OpError::not_found(format!("get {name}: no such volume")).into())
}

/// The volume `name` if it exists.
pub fn get_opt(engine: &Engine, name: &str) -> Result<Option<Volume>> {
    if validate_name(name).is_err() {
        return Ok(None);
    }
    let path = volume_dir(engine, name).join("volume.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut v: Volume =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    // The root may have moved since the volume was made.
    v.mountpoint = absolute(&volume_dir(engine, name).join("_data"));
    Ok(Some(v))
}

/// Every volume, by name.
pub fn list(engine: &Engine) -> Result<Vec<Volume>> {
    let base = volumes_dir(engine);
    let entries = match fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", base.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(v) = get_opt(engine, &name)? {
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether the container `id` still exists. Volume references of removed containers are
/// ignored, so a crash between removing a container and releasing its volumes never pins
/// a volume forever.
fn container_exists(engine: &Engine, id: &str) -> bool {
    engine.root().join("containers").join(id).exists()
}

/// The containers (full ids, sorted) that use the volume `name`.
pub fn users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    Ok(refs(engine, name)?
        .into_iter()
        .filter(|(id, _)| container_exists(engine, id))
        .map(|(id, _)| id)
        .collect())
}

fn refs(engine: &Engine, name: &str) -> Result<Vec<(String, Usage)>> {
    let dir = volume_dir(engine, name).join("refs");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let usage = match fs::read_to_string(entry.path()).as_deref() {
            Ok("anonymous") => Usage::Anonymous,
            _ => Usage::Named,
        };
        out.push((id, usage));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Records that container `id` uses the volume `name`. The caller holds [`lock`].
pub fn add_user_locked(engine: &Engine, name: &str, id: &str, usage: Usage) -> Result<()> {
    let dir = volume_dir(engine, name).join("refs");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join(id), usage.as_str().as_bytes())
}

/// Forgets every use of a volume by container `id` (the container is being removed), and
/// returns the anonymous volumes it had, which no other container uses.
pub fn release(engine: &Engine, id: &str) -> Result<Vec<String>> {
    let _lock = lock(engine)?;
    release_locked(engine, id)
}

fn release_locked(engine: &Engine, id: &str) -> Result<Vec<String>> {
    let mut anonymous = Vec::new();
    for v in list(engine)? {
        let r = refs(engine, &v.name)?;
        let Some((_, usage)) = r.iter().find(|(cid, _)| cid == id) else {
            continue;
        };
        let path = volume_dir(engine, &v.name).join("refs").join(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        let others = r
            .iter()
            .any(|(cid, _)| cid != id && container_exists(engine, cid));
        // A filesystem mounted for the volume's options stays only while containers use it.
        if !others && v.needs_mount() && skiff_snapshot::mount::is_mounted(&v.mountpoint) {
            skiff_snapshot::mount::unmount_all(&v.mountpoint)?;
        }
        if *usage == Usage::Anonymous && !others {
            anonymous.push(v.name);
        }
    }
    Ok(anonymous)
}

/// `rm -v`: releases the container's volumes and deletes the anonymous ones only it used
/// (named volumes stay, as in docker). Returns the names deleted.
pub fn remove_anonymous(engine: &Engine, container_id: &str) -> Result<Vec<String>> {
    let _lock = lock(engine)?;
    let names = release_locked(engine, container_id)?;
    for name in &names {
        delete(engine, name)?;
    }
    Ok(names)
}

/// `volume rm`: refuses a volume in use (docker's `remove NAME: volume is in use - [IDS]`),
/// even with `force`, which only turns a missing volume into success.
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<()> {
    let _lock = lock(engine)?;
    if get_opt(engine, name)?.is_none() {
        if force {
            return Ok(());
        }
        return Err(OpError::not_found(format!("get {name}: no such volume")).into());
    }
    let users = users(engine, name)?;
    if !users.is_empty() {
        return Err(OpError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(" ")
        ))
        .into());
    }
    delete(engine, name)
}

/// Deletes a volume's directory: renamed out of the way first, so that a crash halfway
/// leaves no half-deleted volume under its name. The caller holds [`lock`].
fn delete(engine: &Engine, name: &str) -> Result<()> {
    let dir = volume_dir(engine, name);
    let data = dir.join("_data");
    if skiff_snapshot::mount::is_mounted(&data) {
        skiff_snapshot::mount::unmount_all(&data)?;
    }
    let trash = volumes_dir(engine).join(format!(".rm-{name}-{}", std::process::id()));
    match fs::rename(&dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
    }
    fs::remove_dir_all(&trash).with_context(|| format!("removing {}", trash.display()))
}

/// Bytes of the files under `dir` (each inode once), as docker sizes a volume.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// What `volume prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub names: Vec<String>,
    pub reclaimed: u64,
}

/// Removes every volume no container uses and that `keep` does not spare. As docker 20.10
/// does, volumes with driver options are never pruned (they may stand for outside storage).
pub fn prune(engine: &Engine, keep: impl Fn(&Volume) -> bool) -> Result<Pruned> {
    let _lock = lock(engine)?;
    let mut out = Pruned::default();
    for v in list(engine)? {
        if keep(&v) || v.options.is_some() || !users(engine, &v.name)?.is_empty() {
            continue;
        }
        out.reclaimed += disk_usage(&v.mountpoint);
        delete(engine, &v.name)?;
        out.names.push(v.name);
    }
    Ok(out)
}
