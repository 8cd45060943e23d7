//! `skiff create` (and the first half of `run`): image + options -> a registered container
//! with its writable snapshot. Nothing is mounted or started here; [`super::start`] does that.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::spec::{Healthcheck, ImageConfig};

use super::names::random_name;
use super::store::{new_id, now_rfc3339, Config, Container, ContainerStore, HostConfig, State};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;
use crate::ops::resolve;

/// Everything `create`/`run` was asked, resolved from the flags (see `cli::container`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The image as typed.
    pub image: String,
    pub name: Option<String>,
    /// The words after the image.
    pub command: Vec<String>,
    /// `--entrypoint`; `Some("")` resets the image's entrypoint.
    pub entrypoint: Option<String>,
    /// `-e` and `--env-file` entries, already `KEY=value` (a bare `KEY` taken from skiff's
    /// own environment, or dropped when unset, as docker's CLI does).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `-l KEY=value`.
    pub labels: Vec<String>,
    pub tty: bool,
    pub interactive: bool,
    /// `-a` streams; empty means docker's default for the mode.
    pub attach: Vec<String>,
    pub detach: bool,
    pub health: HealthOptions,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub host_config: HostConfig,
    /// `--runtime`.
    pub runtime: Option<String>,
    /// `-v`, `--mount`, `--tmpfs`, `--volumes-from` as typed (the volume planner parses
    /// them).
    pub volumes: Vec<String>,
    pub mounts: Vec<String>,
    pub tmpfs: Vec<String>,
    pub volumes_from: Vec<String>,
}

/// The `--health-*` flags; durations in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct HealthOptions {
    pub cmd: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub retries: Option<i64>,
    pub none: bool,
}

/// The image is not in the store; `reference` is how docker names it
/// (`Unable to find image 'x:latest' locally`).
#[derive(Debug)]
pub struct MissingImage {
    pub reference: String,
}

impl fmt::Display for MissingImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "No such image: {}", self.reference)
    }
}

impl std::error::Error for MissingImage {}

/// The created container and what the user should be warned of.
pub struct Created {
    pub container: Container,
    pub warnings: Vec<String>,
}

/// Creates the container: resolves the image, unpacks its layers, prepares the writable
/// snapshot and registers the record. On failure nothing is left behind.
pub fn create(engine: &Engine, opts: CreateOptions) -> Result<Created> {
    let found = match resolve::lookup(engine, &opts.image)? {
        Some(f) => f,
        None => {
            let reference = Reference::parse_normalized_tagged(&opts.image)
                .map(|r| r.familiar_string())
                .unwrap_or_else(|_| opts.image.clone());
            return Err(MissingImage { reference }.into());
        }
    };
    let image = found.image;
    let image_config = crate::ops::list::read_config(engine, &image.id)?;
    if let Some(name) = &opts.name {
        validate_name(name)?;
    }
    let id = new_id()?;
    let mut warnings = Vec::new();
    let (config, path, args) = merge_config(&opts, &image_config, &id)?;
    let mut host_config = opts.host_config.clone();
    if host_config.network_mode.is_empty() {
        host_config.network_mode = "none".to_owned();
    }
    if host_config.restart_policy.name.is_empty() {
        host_config.restart_policy.name = "no".to_owned();
    }
    if host_config.auto_remove && !matches!(host_config.restart_policy.name.as_str(), "no") {
        return Err(OpError::invalid("Conflicting options: --restart and --rm".to_owned()).into());
    }
    if host_config.shm_size == 0 {
        host_config.shm_size = skiff_runtime::defaults::DEFAULT_SHM_SIZE as i64;
    }
    if host_config.memory > 0 && host_config.memory_swap == 0 {
        // docker: swap defaults to twice the memory limit.
        host_config.memory_swap = host_config.memory * 2;
    }
    if host_config.memory_swap > 0 && host_config.memory == 0 {
        return Err(OpError::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
                .to_owned(),
        )
        .into());
    }
    if host_config.memory > 0 && host_config.memory < 6 * 1024 * 1024 {
        return Err(OpError::invalid("Minimum memory limit allowed is 6MB".to_owned()).into());
    }

    let rt = super::runtime::open(engine.root(), opts.runtime.as_deref())?;
    host_config.runtime = skiff_runtime::Runtime::name(&rt).to_owned();

    let store = ContainerStore::open(engine.root())?;
    let name = match &opts.name {
        Some(n) => {
            if let Some(other) = store.id_of_name(n)? {
                return Err(super::store::name_conflict(n, &other).into());
            }
            n.clone()
        }
        None => unused_name(&store)?,
    };

    if !opts.volumes.is_empty() {
        host_config.binds = Some(opts.volumes.clone());
    }
    host_config.mount_args = opts.mounts.clone();
    if !opts.tmpfs.is_empty() {
        host_config.tmpfs = Some(
            opts.tmpfs
                .iter()
                .map(|t| match t.split_once(':') {
                    Some((d, o)) => (d.to_owned(), o.to_owned()),
                    None => (t.clone(), String::new()),
                })
                .collect(),
        );
    }
    if !opts.volumes_from.is_empty() {
        host_config.volumes_from = Some(opts.volumes_from.clone());
    }

    // Layers, then the container's own writable snapshot on top.
    let top = crate::ops::unpack::unpack_image(engine, &image)?;
    let snapshotter = engine.snapshotter()?;
    snapshotter.prepare(&id, top.as_deref())?;
    let rootfs = store.dir(&id).join("rootfs");
    let mounts = match plan_mounts(engine, &store, &opts, &config, &id, &rootfs) {
        Ok(m) => m,
        Err(e) => {
            let _ = crate::ops::volume::remove_anonymous(engine, &id);
            let _ = snapshotter.remove(&id);
            let _ = std::fs::remove_dir_all(store.dir(&id));
            return Err(e);
        }
    };
    let container = Container {
        id: id.clone(),
        name,
        image: image.id.to_string(),
        image_ref: opts.image.clone(),
        created: now_rfc3339(),
        path,
        args,
        config,
        host_config,
        snapshot_key: id.clone(),
        driver: snapshotter.driver().to_owned(),
        rootfs,
        runtime: skiff_runtime::Runtime::name(&rt).to_owned(),
        mounts,
    };
    let state = State::default();
    let registered = store
        .create(&container, &state)
        .and_then(|()| super::etc::write_files(&store, &container));
    if let Err(e) = registered {
        let _ = crate::ops::volume::remove_anonymous(engine, &id);
        let _ = store.remove(&id);
        let _ = snapshotter.remove(&id);
        return Err(e);
    }
    if container.host_config.memory > 0
        && !skiff_runtime::HostInfo::swap_accounting(&super::runtime::host()?)
    {
        warnings.push(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                .to_owned(),
        );
    }
    Ok(Created {
        container,
        warnings,
    })
}

/// The container's mounts from its flags and its image's VOLUMEs. New volumes are filled
/// from the image, so the rootfs is mounted for the time of the planning when any volume
/// is involved.
fn plan_mounts(
    engine: &Engine,
    store: &ContainerStore,
    opts: &CreateOptions,
    config: &Config,
    id: &str,
    rootfs: &std::path::Path,
) -> Result<Vec<crate::ops::volume::PlannedMount>> {
    let image_volumes: Vec<String> = config
        .volumes
        .as_ref()
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let mut volumes_from = Vec::new();
    for raw in &opts.volumes_from {
        let (name, readonly) = crate::ops::volume::VolumesFrom::parse_flag(raw)?;
        let source = store.get(&name)?;
        volumes_from.push(crate::ops::volume::VolumesFrom {
            container_id: source.id.clone(),
            mounts: source.mounts.clone(),
            readonly,
        });
    }
    if image_volumes.is_empty()
        && opts.volumes.is_empty()
        && opts.mounts.is_empty()
        && opts.tmpfs.is_empty()
        && volumes_from.is_empty()
    {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(store.dir(id))?;
    std::fs::create_dir_all(rootfs)?;
    let snapshot_mounts = engine.snapshotter()?.mounts(id)?;
    skiff_snapshot::mount::mount_all(&snapshot_mounts, rootfs)?;
    let req = crate::ops::volume::MountRequest {
        container_id: id,
        image_volumes: &image_volumes,
        rootfs: Some(rootfs),
        volumes: &opts.volumes,
        mounts: &opts.mounts,
        tmpfs: &opts.tmpfs,
        volumes_from: &volumes_from,
    };
    let planned = crate::ops::volume::container_mounts(engine, &req);
    let _ = skiff_snapshot::mount::unmount_all(rootfs);
    planned
}

/// A random name no container has yet.
fn unused_name(store: &ContainerStore) -> Result<String> {
    for retry in 0..10 {
        let name = random_name(retry);
        if store.id_of_name(&name)?.is_none() {
            return Ok(name);
        }
    }
    Err(OpError::conflict("error generating a unique container name").into())
}

/// docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with an optional leading `/`.
pub fn validate_name(name: &str) -> Result<(), OpError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(OpError::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// The container's `Config` from the image's and the options, and its `Path` and `Args`
/// (docker's entrypoint + cmd rule).
fn merge_config(
    opts: &CreateOptions,
    image: &ImageConfig,
    id: &str,
) -> Result<(Config, String, Vec<String>)> {
    let ic = image.config.clone().unwrap_or_default();
    // docker: --entrypoint replaces the image's entrypoint and drops its Cmd; "" resets it.
    let (entrypoint, image_cmd) = match &opts.entrypoint {
        Some(e) if e.is_empty() => (None, None),
        Some(e) => (Some(vec![e.clone()]), None),
        None => (
            ic.entrypoint.clone().filter(|e| !e.is_empty()),
            ic.cmd.clone(),
        ),
    };
    let cmd = if opts.command.is_empty() {
        image_cmd
    } else {
        Some(opts.command.clone())
    };
    let mut full: Vec<String> = entrypoint.clone().unwrap_or_default();
    full.extend(cmd.clone().unwrap_or_default());
    if full.is_empty() {
        return Err(OpError::invalid("No command specified").into());
    }
    let path = full.remove(0);

    let mut env = ic.env.clone().unwrap_or_default();
    for e in &opts.env {
        replace_or_append(&mut env, e);
    }
    let mut labels: BTreeMap<String, String> = ic.labels.clone().unwrap_or_default();
    for l in &opts.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_owned(), v.to_owned());
    }
    let hostname = match &opts.hostname {
        Some(h) => h.clone(),
        None if opts.host_config.network_mode == "host" => String::new(),
        None => id[..12].to_owned(),
    };
    let healthcheck = healthcheck(&opts.health, ic.healthcheck.clone());
    let (attach_stdin, attach_stdout, attach_stderr) = if opts.detach {
        (false, false, false)
    } else if opts.attach.is_empty() {
        (opts.interactive, true, true)
    } else {
        let has = |s: &str| opts.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
        (has("stdin"), has("stdout"), has("stderr"))
    };
    let config = Config {
        hostname,
        domainname: String::new(),
        user: opts
            .user
            .clone()
            .unwrap_or_else(|| ic.user.clone().unwrap_or_default()),
        attach_stdin,
        attach_stdout,
        attach_stderr,
        exposed_ports: ic.exposed_ports.as_ref().map(|p| {
            p.keys()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect()
        }),
        tty: opts.tty,
        open_stdin: opts.interactive,
        stdin_once: opts.interactive && attach_stdin,
        env,
        cmd,
        healthcheck,
        image: opts.image.clone(),
        volumes: ic.volumes.as_ref().map(|v| {
            v.keys()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect()
        }),
        working_dir: opts
            .workdir
            .clone()
            .unwrap_or_else(|| ic.working_dir.clone().unwrap_or_default()),
        entrypoint,
        on_build: ic.on_build.clone(),
        labels,
        stop_signal: opts.stop_signal.clone().or(ic.stop_signal.clone()),
        stop_timeout: opts.stop_timeout,
    };
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(OpError::invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            config.working_dir
        ))
        .into());
    }
    Ok((config, path, full))
}

fn healthcheck(h: &HealthOptions, image: Option<Healthcheck>) -> Option<Healthcheck> {
    if h.none {
        return Some(Healthcheck {
            test: Some(vec!["NONE".to_owned()]),
            ..Healthcheck::default()
        });
    }
    let mut out = image.unwrap_or_default();
    if let Some(cmd) = &h.cmd {
        out.test = Some(vec!["CMD-SHELL".to_owned(), cmd.clone()]);
    }
    if h.interval.is_some() {
        out.interval = h.interval;
    }
    if h.timeout.is_some() {
        out.timeout = h.timeout;
    }
    if h.start_period.is_some() {
        out.start_period = h.start_period;
    }
    if h.retries.is_some() {
        out.retries = h.retries;
    }
    if out == Healthcheck::default() {
        None
    } else {
        Some(out)
    }
}

/// docker's `ReplaceOrAppendEnvValues` for one entry: `KEY=v` replaces `KEY`'s value;
/// a bare `KEY` removes it.
pub fn replace_or_append(env: &mut Vec<String>, entry: &str) {
    let key = entry.split_once('=').map_or(entry, |(k, _)| k);
    let pos = env
        .iter()
        .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key);
    match (pos, entry.contains('=')) {
        (Some(i), true) => env[i] = entry.to_owned(),
        (Some(i), false) => {
            env.remove(i);
        }
        (None, true) => env.push(entry.to_owned()),
        (None, false) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_image::spec::RunConfig;

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        ImageConfig {
            config: Some(RunConfig {
                entrypoint: entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()),
                cmd: cmd.map(|e| e.iter().map(|s| s.to_string()).collect()),
                env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
                ..RunConfig::default()
            }),
            ..ImageConfig::default()
        }
    }

    fn run(opts: CreateOptions, img: &ImageConfig) -> (Config, String, Vec<String>) {
        merge_config(&opts, img, &"a".repeat(64)).unwrap()
    }

    #[test]
    fn entrypoint_and_cmd_combine_like_docker() {
        let img = image(Some(&["/ep", "x"]), Some(&["c1"]));
        let (_, p, a) = run(CreateOptions::default(), &img);
        assert_eq!((p.as_str(), a), ("/ep", vec!["x".to_string(), "c1".into()]));
        let opts = CreateOptions {
            command: vec!["y".into()],
            ..Default::default()
        };
        let (_, p, a) = run(opts, &img);
        assert_eq!((p.as_str(), a), ("/ep", vec!["x".to_string(), "y".into()]));
        let opts = CreateOptions {
            entrypoint: Some("sh".into()),
            ..Default::default()
        };
        let (c, p, a) = run(opts, &img);
        assert_eq!((p.as_str(), a.len()), ("sh", 0));
        assert_eq!(c.cmd, None);
        let opts = CreateOptions {
            entrypoint: Some(String::new()),
            command: vec!["echo".into(), "hi".into()],
            ..Default::default()
        };
        let (c, p, _) = run(opts, &img);
        assert_eq!((p.as_str(), c.entrypoint), ("echo", None));
        let err = merge_config(&CreateOptions::default(), &image(None, None), "x").unwrap_err();
        assert_eq!(err.to_string(), "No command specified");
    }

    #[test]
    fn env_overrides_by_key_and_hostname_defaults_to_short_id() {
        let img = image(None, Some(&["sh"]));
        let opts = CreateOptions {
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let (c, _, _) = run(opts, &img);
        assert_eq!(c.env, ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.hostname, "a".repeat(12));
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("/web").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a").is_err());
        assert!(validate_name("a b").is_err());
    }
}
