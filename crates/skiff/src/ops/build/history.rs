//! Build records (`skiff buildx history`): every build leaves `<root>/builds/<id>/` with a
//! `record.json` (what was built, each step's time and result, the image or the error) and a
//! `log` (the complete output of every step, in BuildKit's plain-progress form), so that a
//! build's output can be read again after the terminal that showed it is gone.
//!
//! A record directory appears whole: it is filled under a `.tmp-<pid>-<id>` name and renamed
//! into place. `record.json` is only ever replaced (temp + fsync + rename); `log` is appended
//! to as the build goes, so that a build that was killed still leaves what it printed. At
//! most [`KEEP`] records are kept: starting a build removes the oldest beyond that.
//! This module prints nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::layer::{alive, owner_pid};
use crate::ops::error::PlainError;
use crate::ops::volume::store::write_atomic;

/// How many build records are kept.
pub const KEEP: usize = 50;

/// The directory that holds the records.
pub fn builds_dir(root: &Path) -> PathBuf {
    root.join("builds")
}

/// One build, as `record.json` holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// Random lowercase hex.
    pub id: String,
    /// RFC 3339, UTC, with fractions.
    pub started: String,
    /// When the build ended (absent while it runs, or if it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// The Dockerfile's name as given (`-f`), `Dockerfile` by default.
    pub dockerfile: String,
    /// The context directory.
    pub context: String,
    /// The tags asked for, in their familiar form.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The image built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Why the build failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The building process, while it runs (to tell a running build from a killed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// One step of a build.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StepRecord {
    /// 1-based, as in `[2/5]`.
    pub number: usize,
    /// The instruction as written.
    pub text: String,
    pub cached: bool,
    pub duration_ms: u64,
    /// The intermediate image the step produced (absent for steps that make none, such as
    /// an `ARG` before the first `FROM`, or a step that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Where a build stands, as `buildx history ls` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Completed,
    Error,
    /// The building process died before it recorded an end.
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "Running",
            Status::Completed => "Completed",
            Status::Error => "Error",
            Status::Canceled => "Canceled",
        }
    }
}

impl Record {
    pub fn status(&self) -> Status {
        match (&self.finished, &self.error) {
            (Some(_), None) => Status::Completed,
            (Some(_), Some(_)) => Status::Error,
            (None, _) if self.pid.is_some_and(alive) => Status::Running,
            (None, _) => Status::Canceled,
        }
    }

    pub fn started_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.started, &Rfc3339).ok()
    }

    pub fn finished_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(self.finished.as_deref()?, &Rfc3339).ok()
    }

    /// How long the build took (until now for a running one; none for a killed one).
    pub fn duration(&self) -> Option<std::time::Duration> {
        let start = self.started_at()?;
        let end = match self.status() {
            Status::Running => OffsetDateTime::now_utc(),
            _ => self.finished_at()?,
        };
        std::time::Duration::try_from(end - start).ok()
    }
}

/// What is known when a build starts.
pub struct NewRecord {
    pub dockerfile: String,
    pub context: String,
    pub tags: Vec<String>,
}

/// The record of the build in progress: steps are added in memory, output is appended to
/// the log as it comes, and [`BuildLog::finish`] writes the final record.
pub struct BuildLog {
    dir: PathBuf,
    record: Record,
    log: File,
}

fn now_rfc3339() -> String {
    skiff_image::spec::format_rfc3339(OffsetDateTime::now_utc())
}

impl BuildLog {
    /// Starts a record under `root` (and trims the old ones).
    pub fn create(root: &Path, new: NewRecord) -> Result<BuildLog> {
        let builds = builds_dir(root);
        fs::create_dir_all(&builds).with_context(|| format!("creating {}", builds.display()))?;
        let id = super::random_hex(24);
        let record = Record {
            id: id.clone(),
            started: now_rfc3339(),
            finished: None,
            dockerfile: new.dockerfile,
            context: new.context,
            tags: new.tags,
            image: None,
            error: None,
            pid: Some(std::process::id()),
            steps: Vec::new(),
        };
        let tmp = builds.join(format!(".tmp-{}-{id}", std::process::id()));
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let filled = (|| -> Result<()> {
            write_atomic(&tmp.join("record.json"), &record_bytes(&record)?)?;
            File::create(tmp.join("log"))?.sync_all()?;
            Ok(())
        })();
        let dir = builds.join(&id);
        if let Err(e) = filled.and_then(|()| {
            fs::rename(&tmp, &dir).with_context(|| format!("creating {}", dir.display()))
        }) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let log = OpenOptions::new()
            .append(true)
            .open(dir.join("log"))
            .with_context(|| format!("opening {}", dir.join("log").display()))?;
        if let Err(e) = trim(root, KEEP) {
            log::warn!("removing old build records: {e:#}");
        }
        Ok(BuildLog { dir, record, log })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The steps, to add to or complete.
    pub fn steps_mut(&mut self) -> &mut Vec<StepRecord> {
        &mut self.record.steps
    }

    /// Appends output to the log.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.log.write_all(bytes)
    }

    /// Another handle on the log, for a thread that copies a RUN's output into it (the
    /// file is opened for appending, so writes from both handles never overwrite).
    pub fn log_handle(&self) -> io::Result<File> {
        self.log.try_clone()
    }

    /// Ends the record: the image built, or why the build failed.
    pub fn finish(mut self, result: std::result::Result<&str, &str>) -> Result<Record> {
        match result {
            Ok(image) => self.record.image = Some(image.to_owned()),
            Err(error) => self.record.error = Some(error.to_owned()),
        }
        self.record.finished = Some(now_rfc3339());
        self.record.pid = None;
        self.log.sync_all()?;
        write_atomic(&self.dir.join("record.json"), &record_bytes(&self.record)?)?;
        Ok(self.record)
    }
}

fn record_bytes(record: &Record) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn read_record(dir: &Path) -> Result<Record> {
    let path = dir.join("record.json");
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Every record, newest first. Records that cannot be read are skipped with a warning.
pub fn list(root: &Path) -> Result<Vec<Record>> {
    let builds = builds_dir(root);
    let entries = match fs::read_dir(&builds) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", builds.display())),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match read_record(&e.path()) {
            Ok(r) => out.push(r),
            Err(err) => log::warn!("skipping build record {name}: {err:#}"),
        }
    }
    out.sort_by(|a, b| {
        b.started_at()
            .cmp(&a.started_at())
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(out)
}

/// docker-like one-line error for an id that matches no record.
fn no_such(id: &str) -> anyhow::Error {
    PlainError::new(
        skiff_image::ErrorKind::NotFound,
        format!("Error: no such build record: {id}"),
    )
    .into()
}

/// The record whose id is `prefix` or starts with it (unique), the one `^N` builds before
/// the newest, or the newest when `prefix` is `None`.
pub fn find(root: &Path, prefix: Option<&str>) -> Result<Record> {
    let all = list(root)?;
    let Some(prefix) = prefix else {
        return all.into_iter().next().ok_or_else(|| {
            PlainError::new(skiff_image::ErrorKind::NotFound, "Error: no build records").into()
        });
    };
    if prefix.is_empty() {
        return Err(no_such(prefix));
    }
    // buildx's `^N`: the build before the newest N.
    if let Some(n) = prefix
        .strip_prefix('^')
        .and_then(|n| n.parse::<usize>().ok())
    {
        return all.into_iter().nth(n).ok_or_else(|| no_such(prefix));
    }
    if let Some(r) = all.iter().find(|r| r.id == prefix) {
        return Ok(r.clone());
    }
    let mut matching = all.into_iter().filter(|r| r.id.starts_with(prefix));
    match (matching.next(), matching.next()) {
        (Some(r), None) => Ok(r),
        (Some(_), Some(_)) => Err(PlainError::invalid(format!(
            "Error: build record prefix {prefix} is ambiguous"
        ))
        .into()),
        (None, _) => Err(no_such(prefix)),
    }
}

/// The path of a record's log.
pub fn log_path(root: &Path, id: &str) -> PathBuf {
    builds_dir(root).join(id).join("log")
}

/// Removes a record (moved aside first, so that it is either listed whole or not at all).
pub fn remove(root: &Path, id: &str) -> Result<()> {
    let builds = builds_dir(root);
    let dir = builds.join(id);
    let aside = builds.join(format!(".tmp-{}-rm-{id}", std::process::id()));
    match fs::rename(&dir, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_such(id)),
        Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
    }
    fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))
}

/// Removes the oldest records beyond `keep` (never one whose build is still running), and
/// what killed processes left half-made.
pub fn trim(root: &Path, keep: usize) -> Result<()> {
    let builds = builds_dir(root);
    if let Ok(entries) = fs::read_dir(&builds) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner_pid(&name, ".tmp-").is_some_and(|pid| !alive(pid)) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    for old in list(root)?.iter().skip(keep) {
        if old.status() == Status::Running {
            continue;
        }
        match remove(root, &old.id) {
            Ok(()) => {}
            // Another build trimmed it first.
            Err(e) if crate::ops::error::kind_of(&e) == skiff_image::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn new(tag: &str) -> NewRecord {
        NewRecord {
            dockerfile: "Dockerfile".to_owned(),
            context: "/ctx".to_owned(),
            tags: vec![tag.to_owned()],
        }
    }

    #[test]
    fn a_finished_record_reads_back_with_its_steps_and_log() {
        let root = tempfile::tempdir().unwrap();
        let mut b = BuildLog::create(root.path(), new("a:latest")).unwrap();
        assert_eq!(b.id().len(), 24);
        b.steps_mut().push(StepRecord {
            number: 1,
            text: "FROM busybox".to_owned(),
            cached: false,
            duration_ms: 3,
            image: Some("sha256:ab".to_owned()),
        });
        b.append(b"#1 [1/1] FROM busybox\n").unwrap();
        let id = b.id().to_owned();
        assert_eq!(find(root.path(), None).unwrap().status(), Status::Running);
        let done = b.finish(Ok("sha256:cd")).unwrap();
        let read = find(root.path(), Some(&id[..6])).unwrap();
        assert_eq!(read, done);
        assert_eq!(read.status(), Status::Completed);
        assert_eq!(read.steps.len(), 1);
        assert!(read.duration().is_some());
        assert_eq!(
            fs::read_to_string(log_path(root.path(), &id)).unwrap(),
            "#1 [1/1] FROM busybox\n"
        );
    }

    #[test]
    fn a_failed_build_is_an_error_and_a_killed_one_is_canceled() {
        let root = tempfile::tempdir().unwrap();
        let b = BuildLog::create(root.path(), new("x")).unwrap();
        let failed = b.finish(Err("boom")).unwrap();
        assert_eq!(failed.status(), Status::Error);
        let mut killed = failed.clone();
        killed.finished = None;
        killed.error = None;
        // No process has this pid (above the kernel's maximum).
        killed.pid = Some(u32::MAX - 1);
        assert_eq!(killed.status(), Status::Canceled);
    }

    #[test]
    fn unknown_ids_and_removed_records_are_not_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(find(root.path(), Some("abc")).is_err());
        assert!(find(root.path(), None).is_err());
        let id = BuildLog::create(root.path(), new("x"))
            .unwrap()
            .finish(Ok("sha256:1"))
            .unwrap()
            .id;
        remove(root.path(), &id).unwrap();
        assert!(find(root.path(), Some(&id)).is_err());
        assert!(remove(root.path(), &id).is_err());
        assert!(list(root.path()).unwrap().is_empty());
    }

    #[test]
    fn only_the_newest_records_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for i in 0..KEEP + 3 {
            let b = BuildLog::create(root.path(), new(&format!("t{i}"))).unwrap();
            ids.push(b.finish(Ok("sha256:1")).unwrap().id);
        }
        let left = list(root.path()).unwrap();
        assert_eq!(left.len(), KEEP);
        // Newest first; the three oldest went.
        assert_eq!(left[0].id, ids[KEEP + 2]);
        assert_eq!(left[KEEP - 1].id, ids[3]);
        for old in &ids[..3] {
            assert!(!builds_dir(root.path()).join(old).exists());
        }
        // buildx's `^N` counts back from the newest.
        assert_eq!(find(root.path(), Some("^0")).unwrap().id, ids[KEEP + 2]);
        assert_eq!(find(root.path(), Some("^1")).unwrap().id, ids[KEEP + 1]);
        assert!(find(root.path(), Some(&format!("^{KEEP}"))).is_err());
    }

    #[test]
    fn a_running_build_is_not_trimmed() {
        let root = tempfile::tempdir().unwrap();
        let running = BuildLog::create(root.path(), new("running")).unwrap();
        for _ in 0..3 {
            BuildLog::create(root.path(), new("x"))
                .unwrap()
                .finish(Ok("sha256:1"))
                .unwrap();
        }
        trim(root.path(), 1).unwrap();
        let left: Vec<String> = list(root.path())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert!(left.contains(&running.id().to_owned()));
        assert_eq!(left.len(), 2);
    }
}
