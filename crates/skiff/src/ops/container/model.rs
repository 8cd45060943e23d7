//! The container record and its state, in docker's shape (`docker inspect` prints these
//! fields under the same names), so that inspect, ps and the Engine API serialize them
//! without translation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skiff_image::spec::Healthcheck;

/// One container: what it was created from and with. Written once by `create` (and again by
/// `rename`); what changes while it lives is in [`State`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    /// 64 lowercase hex characters.
    pub id: String,
    /// The unique name, without docker's leading `/`.
    pub name: String,
    /// The image ID (`sha256:<hex>`).
    pub image: String,
    /// The image as the user typed it (docker's `Config.Image`).
    pub image_ref: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// The command's executable and its arguments (docker's `Path` and `Args`).
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    pub host_config: HostConfig,
    /// The writable snapshot holding the container's changes (its key in the snapshotter).
    pub snapshot_key: String,
    /// The storage driver the snapshot lives in.
    pub driver: String,
    /// Where the snapshot is mounted while the container runs.
    pub rootfs: PathBuf,
    /// The OCI runtime that runs it (`runc`, `crun`).
    pub runtime: String,
    /// Volumes, binds and tmpfs mounts, as the volume planner resolved them at create
    /// (`crate::ops::volume::container_mounts`); `inspect` shows them as `Mounts`.
    #[serde(default)]
    pub mounts: Vec<crate::ops::volume::PlannedMount>,
}

impl Container {
    /// The first 12 characters of the id, as docker shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// docker's container `Config`: the image's defaults merged with the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// docker shows `null` for no variables.
    #[serde(serialize_with = "null_if_empty", deserialize_with = "empty_if_null")]
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
}

/// docker's `RestartPolicy`: `no`, `on-failure` (with at most `maximum_retry_count`
/// restarts, 0 meaning no limit), `always`, `unless-stopped`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: u32,
}

/// One `--ulimit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// docker's `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".to_owned(),
            config: BTreeMap::new(),
        }
    }
}

/// docker's `HostConfig`: how the container runs on this host. The volume flags are kept as
/// the user wrote them (`Binds`, `Tmpfs`, `VolumesFrom`, and `--mount` strings in
/// `MountArgs`); what they resolved to is [`Container::mounts`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile", alias = "ContainerIdFile")]
    pub container_id_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Vec<String>,
    pub dns_options: Vec<String>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Option<Vec<String>>,
    pub ipc_mode: String,
    pub oom_score_adj: i64,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode", alias = "UtsMode")]
    pub uts_mode: String,
    pub shm_size: i64,
    pub runtime: String,
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub init: Option<bool>,
    /// `--mount` values as typed (docker keeps parsed objects here; skiff's volume code
    /// parses them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_args: Vec<String>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

/// docker's container states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => return None,
        })
    }

    /// Whether a monitor owns the container in this state (it must be alive).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One healthcheck probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthLog>,
}

/// Go's zero time as docker prints it for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What changes while a container lives: written by the monitor (and by the commands that
/// create, stop and reconcile it), always whole, under the container's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// The init's pid on the host while it runs, else 0.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The monitor process, and its start time (clock ticks since boot, from
    /// `/proc/<pid>/stat`), which tells it apart from a later process with the same pid.
    #[serde(default)]
    pub monitor_pid: i32,
    #[serde(default)]
    pub monitor_start_time: u64,
    /// Restarts done by the restart policy since the last start by the user.
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped by `stop`/`kill`/`rm -f`: the restart policy leaves it stopped
    /// (docker's `HasBeenManuallyStopped`).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Set by `skiff run --rm`: the monitor removes the container when it ends.
    #[serde(default)]
    pub remove_on_exit: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.to_owned(),
            finished_at: ZERO_TIME.to_owned(),
            health: None,
            monitor_pid: 0,
            monitor_start_time: 0,
            restart_count: 0,
            manually_stopped: false,
            remove_on_exit: false,
        }
    }
}

impl State {
    /// Sets `status` and the booleans docker derives from it.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
        self.running = matches!(
            status,
            Status::Running | Status::Paused | Status::Restarting
        );
        self.paused = status == Status::Paused;
        self.restarting = status == Status::Restarting;
        self.dead = status == Status::Dead;
        if !self.running {
            self.pid = 0;
        }
    }
}

fn null_if_empty<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(v)
    }
}

fn empty_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}
