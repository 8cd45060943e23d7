//! `skiff run`, `create`, `start` and the `container` command group. The lifecycle
//! commands (`ps`, `stop`, `kill`, `rm`, `logs`, ...) are in `container_life`; the
//! attached streams in `container_attach`.

use std::io::IsTerminal;

use anyhow::Result;
use clap::{ArgAction, Args, Subcommand};

use super::container_attach::pump;
use super::container_life as life;
use super::GlobalOptions;
use crate::ops::container::create::{create, CreateOptions, HealthOptions, MissingImage};
use crate::ops::container::start::{start, StartFailed};
use crate::ops::container::store::{HostConfig, RestartPolicy, Ulimit};
use crate::ops::container::ContainerStore;
use crate::ops::error::{OpError, PlainError};

/// The flags `run` and `create` share, with docker's names.
#[derive(Args, Debug, Clone)]
pub struct CreateFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", visible_alias = "cpuset", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Connect a container to a network ("none", "host" or "container:<name|id>")
    #[arg(long = "network", visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits (default "no")
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it
    /// exits
    #[arg(long)]
    pub rm: bool,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The image, then the command and its arguments
    #[arg(required = true, num_args = 1.., trailing_var_arg = true,
          allow_hyphen_values = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", value_name = "bool", default_value_t = true,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub flags: CreateFlags,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// The per-container monitor (hidden; started by `start`).
#[derive(Args, Debug)]
pub struct MonitorArgs {
    pub id: String,
    /// Wait for a client on the attach socket before starting the container.
    #[arg(long)]
    pub attach: bool,
}

/// Commands at the top level (`skiff run`, `skiff ps`, ...).
#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(life::StopArgs),
    /// Restart one or more containers
    Restart(life::StopArgs),
    /// Kill one or more running containers
    Kill(life::KillArgs),
    /// Remove one or more containers
    Rm(life::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(life::WaitArgs),
    /// Fetch the logs of a container
    Logs(life::LogsArgs),
    /// List containers
    Ps(life::PsArgs),
    /// Execute a command in a running container
    Exec(super::container_exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(super::container_exec::AttachArgs),
    /// Pause all processes within one or more containers
    Pause(super::container_misc::ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(super::container_misc::ContainersArgs),
    /// Rename a container
    Rename(super::container_misc::RenameArgs),
    /// Display the running processes of a container
    Top(super::container_misc::TopArgs),
    /// List port mappings or a specific mapping for the container
    Port(super::container_misc::PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(super::container_misc::StatsArgs),
    /// Update configuration of one or more containers
    Update(super::container_misc::UpdateArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    #[command(name = "__monitor", hide = true)]
    Monitor(MonitorArgs),
}

/// `skiff container ...`.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(life::StopArgs),
    /// Restart one or more containers
    Restart(life::StopArgs),
    /// Kill one or more running containers
    Kill(life::KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(life::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(life::WaitArgs),
    /// Fetch the logs of a container
    Logs(life::LogsArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(life::PsArgs),
    /// Display detailed information on one or more containers
    Inspect(super::inspect::InspectArgs),
    /// Execute a command in a running container
    Exec(super::container_exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(super::container_exec::AttachArgs),
    /// Pause all processes within one or more containers
    Pause(super::container_misc::ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(super::container_misc::ContainersArgs),
    /// Rename a container
    Rename(super::container_misc::RenameArgs),
    /// Display the running processes of a container
    Top(super::container_misc::TopArgs),
    /// List port mappings or a specific mapping for the container
    Port(super::container_misc::PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(super::container_misc::StatsArgs),
    /// Update configuration of one or more containers
    Update(super::container_misc::UpdateArgs),
    /// Remove all stopped containers
    Prune(super::container_misc::PruneArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(super::container_fs::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(super::container_fs::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(super::container_fs::ExportArgs),
    /// Create a new image from a container's changes
    Commit(super::container_fs::CommitArgs),
}

pub fn run(g: &GlobalOptions, cmd: TopCommand) -> Result<()> {
    match cmd {
        TopCommand::Run(a) | TopCommand::Container(ContainerCommand::Run(a)) => run_run(g, *a),
        TopCommand::Create(a) | TopCommand::Container(ContainerCommand::Create(a)) => {
            run_create(g, *a)
        }
        TopCommand::Start(a) | TopCommand::Container(ContainerCommand::Start(a)) => run_start(g, a),
        TopCommand::Stop(a) | TopCommand::Container(ContainerCommand::Stop(a)) => {
            life::run_stop(g, a, false)
        }
        TopCommand::Restart(a) | TopCommand::Container(ContainerCommand::Restart(a)) => {
            life::run_stop(g, a, true)
        }
        TopCommand::Kill(a) | TopCommand::Container(ContainerCommand::Kill(a)) => {
            life::run_kill(g, a)
        }
        TopCommand::Rm(a) | TopCommand::Container(ContainerCommand::Rm(a)) => life::run_rm(g, a),
        TopCommand::Wait(a) | TopCommand::Container(ContainerCommand::Wait(a)) => {
            life::run_wait(g, a)
        }
        TopCommand::Logs(a) | TopCommand::Container(ContainerCommand::Logs(a)) => {
            life::run_logs(g, a)
        }
        TopCommand::Ps(a) | TopCommand::Container(ContainerCommand::Ls(a)) => life::run_ps(g, a),
        TopCommand::Container(ContainerCommand::Inspect(mut a)) => {
            a.kind = Some("container".to_owned());
            super::inspect::run(g, a, false)
        }
        TopCommand::Exec(a) | TopCommand::Container(ContainerCommand::Exec(a)) => {
            super::container_exec::run_exec(g, a)
        }
        TopCommand::Attach(a) | TopCommand::Container(ContainerCommand::Attach(a)) => {
            super::container_exec::run_attach(g, a)
        }
        TopCommand::Pause(a) | TopCommand::Container(ContainerCommand::Pause(a)) => {
            super::container_misc::run_pause(g, a)
        }
        TopCommand::Unpause(a) | TopCommand::Container(ContainerCommand::Unpause(a)) => {
            super::container_misc::run_unpause(g, a)
        }
        TopCommand::Rename(a) | TopCommand::Container(ContainerCommand::Rename(a)) => {
            super::container_misc::run_rename(g, a)
        }
        TopCommand::Top(a) | TopCommand::Container(ContainerCommand::Top(a)) => {
            super::container_misc::run_top(g, a)
        }
        TopCommand::Port(a) | TopCommand::Container(ContainerCommand::Port(a)) => {
            super::container_misc::run_port(g, a)
        }
        TopCommand::Update(a) | TopCommand::Container(ContainerCommand::Update(a)) => {
            super::container_misc::run_update(g, a)
        }
        TopCommand::Stats(a) | TopCommand::Container(ContainerCommand::Stats(a)) => {
            super::container_misc::run_stats(g, a)
        }
        TopCommand::Container(ContainerCommand::Prune(a)) => super::container_misc::run_prune(g, a),
        TopCommand::Container(ContainerCommand::Cp(a)) => super::container_fs::run_cp(g, a),
        TopCommand::Container(ContainerCommand::Diff(a)) => super::container_fs::run_diff(g, a),
        TopCommand::Container(ContainerCommand::Export(a)) => super::container_fs::run_export(g, a),
        TopCommand::Container(ContainerCommand::Commit(a)) => super::container_fs::run_commit(g, a),
        TopCommand::Monitor(a) => {
            let code = crate::monitor::main(&g.root, &a.id, a.attach);
            std::process::exit(code)
        }
    }
}

/// Prints a `run`/`create`/`start` failure as docker's CLI does (`docker: Error response
/// from daemon: ...` and a pointer to the help) and exits with `code`.
fn fail(cmd: &str, message: &str, code: i32) -> ! {
    eprintln!("skiff: {message}\n\nRun 'skiff {cmd} --help' for more information");
    std::process::exit(code)
}

/// The message of an error as the daemon part of docker prints it.
fn daemon_message(e: &anyhow::Error) -> String {
    if let Some(p) = e.chain().find_map(|c| c.downcast_ref::<PlainError>()) {
        return p.message.clone();
    }
    format!(
        "Error response from daemon: {}",
        super::output::error_message(e)
    )
}

fn run_run(g: &GlobalOptions, a: RunArgs) -> Result<()> {
    let opts = match create_options(&a.flags, a.detach) {
        Ok(o) => o,
        Err(e) => fail("run", &format!("{e:#}"), 125),
    };
    if a.detach && a.flags.rm && !opts.attach.is_empty() {
        fail("run", "Conflicting options: -a and -d", 125);
    }
    let interactive = opts.interactive;
    let tty = opts.tty;
    if tty && interactive && !a.detach && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        std::process::exit(1);
    }
    let detach = a.detach;
    let engine = match g.engine() {
        Ok(e) => e,
        Err(e) => fail("run", &daemon_message(&e), 125),
    };
    let created = match create_container(g, &engine, opts) {
        Ok(c) => c,
        Err(e) => fail("run", &daemon_message(&e), 125),
    };
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    let c = created.container;
    let store = ContainerStore::open(engine.root())?;
    match start(&engine, &store, &c, !detach) {
        Ok(started) => {
            if detach {
                println!("{}", c.id);
                return Ok(());
            }
            let Some(stream) = started.attach else {
                anyhow::bail!("the container started without its output attached");
            };
            let code = pump(&engine, &store, &c, stream, interactive, a.sig_proxy)?;
            if c.host_config.auto_remove {
                wait_removed(&store, &c.id);
            }
            std::process::exit(code)
        }
        Err(e) => match e.downcast_ref::<StartFailed>() {
            Some(f) => {
                if c.host_config.auto_remove {
                    wait_removed(&store, &c.id);
                }
                fail(
                "run",
                &format!(
                    "Error response from daemon: failed to create task for container: OCI runtime create failed: {}: unknown",
                    f.message
                ),
                f.code,
                )
            }
            None => fail("run", &daemon_message(&e), 125),
        },
    }
}

/// Like docker's CLI with `--rm`: the command returns once the monitor has removed the
/// container (bounded, in case removal fails; the monitor logs why).
fn wait_removed(store: &ContainerStore, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.dir(id).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `create`, pulling the image first when it is not here, as docker does (`Unable to find
/// image 'x:latest' locally`, then the pull's progress on stderr).
fn create_container(
    g: &GlobalOptions,
    engine: &crate::ops::engine::Engine,
    opts: CreateOptions,
) -> Result<crate::ops::container::create::Created> {
    match create(engine, opts.clone()) {
        Err(e) => {
            let Some(m) = e.downcast_ref::<MissingImage>() else {
                return Err(e);
            };
            eprintln!("Unable to find image '{}' locally", m.reference);
            let pull_opts = crate::ops::registry::pull::PullOptions {
                max_concurrent: 3,
                insecure: g.insecure_registries.clone(),
                ..Default::default()
            };
            let on = |ev: crate::ops::registry::pull::PullEvent| {
                use crate::ops::registry::pull::PullEvent;
                match ev {
                    PullEvent::PullingFrom { reference, path } => {
                        eprintln!("{reference}: Pulling from {path}")
                    }
                    PullEvent::Layer { id, status } => eprintln!("{id}: {status}"),
                    PullEvent::Progress { .. } => {}
                    PullEvent::Digest(d) => eprintln!("Digest: {d}"),
                    PullEvent::Status(s) => eprintln!("Status: {s}"),
                }
            };
            crate::ops::registry::pull::pull(engine, &opts.image, &pull_opts, &on)?;
            create(engine, opts)
        }
        ok => ok,
    }
}

fn run_create(g: &GlobalOptions, a: CreateArgs) -> Result<()> {
    let opts = match create_options(&a.flags, true) {
        Ok(o) => o,
        Err(e) => fail("create", &format!("{e:#}"), 125),
    };
    let engine = match g.engine() {
        Ok(e) => e,
        Err(e) => fail("create", &daemon_message(&e), 125),
    };
    // `create` records the attach flags as `run` would (docker's Config.Attach*).
    let mut opts = opts;
    opts.detach = false;
    match create_container(g, &engine, opts) {
        Ok(created) => {
            for w in &created.warnings {
                eprintln!("WARNING: {w}");
            }
            println!("{}", created.container.id);
            Ok(())
        }
        Err(e) => fail("create", &daemon_message(&e), 125),
    }
}

fn run_start(g: &GlobalOptions, a: StartArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(PlainError::invalid(
                "you cannot start and attach multiple containers at once",
            )
            .into());
        }
        let c = store.get(&a.containers[0])?;
        let started = match start(&engine, &store, &c, true) {
            Ok(s) => s,
            Err(e) => return Err(start_error(e)),
        };
        let stream = match started.attach {
            Some(stream) => stream,
            // Already running: attach to its live output.
            None => crate::ops::container::attach::connect(&store, &c)?,
        };
        let code = pump(
            &engine,
            &store,
            &c,
            stream,
            a.interactive && c.config.open_stdin,
            true,
        )?;
        std::process::exit(code)
    }
    let mut failed = None;
    for name in &a.containers {
        let result = store
            .get(name)
            .and_then(|c| start(&engine, &store, &c, false));
        match result {
            Ok(_) => println!("{name}"),
            Err(e) => {
                let e = start_error(e);
                eprintln!("{}", daemon_message(&e));
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(_) => Err(crate::ops::error::Reported(anyhow::anyhow!(
            "Error: failed to start containers: {}",
            a.containers.join(", ")
        ))
        .into()),
        None => Ok(()),
    }
}

/// A start failure as docker's daemon words it.
fn start_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<StartFailed>() {
        Some(f) => anyhow::anyhow!(
            "failed to create task for container: OCI runtime create failed: {}: unknown",
            f.message
        ),
        None => e,
    }
}

/// Resolves the flags into [`CreateOptions`]: docker's client-side parsing and checks.
pub fn create_options(f: &CreateFlags, detach: bool) -> Result<CreateOptions> {
    let mut args = f.args.iter();
    let image = args.next().cloned().unwrap_or_default();
    let command: Vec<String> = args.cloned().collect();
    let mut env = Vec::new();
    for file in &f.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| PlainError::invalid(format!("open {file}: {}", io_message(&e))))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(v) = env_entry(line) {
                env.push(v);
            }
        }
    }
    for e in &f.env {
        if let Some(v) = env_entry(e) {
            env.push(v);
        }
    }
    let mut hc = HostConfig {
        privileged: f.privileged,
        readonly_rootfs: f.read_only,
        auto_remove: f.rm,
        cgroup_parent: f.cgroup_parent.clone().unwrap_or_default(),
        cpuset_cpus: f.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: f.cpuset_mems.clone().unwrap_or_default(),
        cpu_shares: f.cpu_shares.unwrap_or(0),
        pids_limit: f.pids_limit,
        init: f.init.then_some(true),
        network_mode: f.network.clone().unwrap_or_else(|| "none".to_owned()),
        ..HostConfig::default()
    };
    if !matches!(hc.network_mode.as_str(), "none" | "host")
        && !hc.network_mode.starts_with("container:")
    {
        return Err(OpError::invalid(format!(
            "network {} not found (skiff supports --network none, host and container:NAME)",
            hc.network_mode
        ))
        .into());
    }
    if hc.network_mode == "host" && f.hostname.is_some() {
        return Err(OpError::invalid("Conflicting options: hostname and the network mode").into());
    }
    if !f.cap_add.is_empty() {
        hc.cap_add = Some(f.cap_add.clone());
    }
    if !f.cap_drop.is_empty() {
        hc.cap_drop = Some(f.cap_drop.clone());
    }
    let bytes = |flag: &str, v: &Option<String>| -> Result<i64> {
        v.as_deref().map_or(Ok(0), |s| parse_bytes_flag(flag, s))
    };
    hc.memory = bytes("-m, --memory", &f.memory)?;
    hc.memory_swap = bytes("--memory-swap", &f.memory_swap)?;
    hc.memory_reservation = bytes("--memory-reservation", &f.memory_reservation)?;
    hc.shm_size = bytes("--shm-size", &f.shm_size)?;
    if let Some(c) = &f.cpus {
        hc.nano_cpus = parse_cpus(c)?;
    }
    if let Some(r) = &f.restart {
        hc.restart_policy = parse_restart(r)?;
    }
    if !f.ulimit.is_empty() {
        let mut ul = Vec::new();
        for u in &f.ulimit {
            ul.push(parse_ulimit(u)?);
        }
        hc.ulimits = Some(ul);
    }
    let mut secopts = Vec::new();
    for s in &f.security_opt {
        secopts.push(security_opt(s)?);
    }
    if !secopts.is_empty() {
        hc.security_opt = Some(secopts);
    }
    let health = HealthOptions {
        cmd: f.health_cmd.clone(),
        interval: parse_duration_flag("--health-interval", &f.health_interval)?,
        timeout: parse_duration_flag("--health-timeout", &f.health_timeout)?,
        start_period: parse_duration_flag("--health-start-period", &f.health_start_period)?,
        retries: f.health_retries,
        none: f.no_healthcheck,
    };
    if f.no_healthcheck
        && (f.health_cmd.is_some()
            || f.health_interval.is_some()
            || f.health_timeout.is_some()
            || f.health_retries.is_some()
            || f.health_start_period.is_some())
    {
        return Err(OpError::invalid("--no-healthcheck conflicts with --health-* options").into());
    }
    for a in &f.attach {
        if !["stdin", "stdout", "stderr"].contains(&a.to_ascii_lowercase().as_str()) {
            return Err(OpError::invalid(format!(
                "invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
            ))
            .into());
        }
    }
    if let Some(s) = &f.stop_signal {
        crate::ops::container::kill::parse_signal(s)?;
    }
    Ok(CreateOptions {
        image,
        name: f.name.clone(),
        command,
        entrypoint: f.entrypoint.clone(),
        env,
        workdir: f.workdir.clone(),
        user: f.user.clone(),
        hostname: f.hostname.clone(),
        labels: f.label.clone(),
        tty: f.tty,
        interactive: f.interactive,
        attach: f.attach.clone(),
        detach,
        health,
        stop_signal: f.stop_signal.clone(),
        stop_timeout: f.stop_timeout,
        host_config: hc,
        runtime: f.runtime.clone(),
        volumes: f.volume.clone(),
        mounts: f.mount.clone(),
        tmpfs: f.tmpfs.clone(),
        volumes_from: f.volumes_from.clone(),
    })
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// `KEY=value` as is; a bare `KEY` takes skiff's own value, or is dropped when unset.
pub(super) fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_owned());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

/// A byte-size flag (`-m 512m`, `--memory-swap -1`) as docker reads it.
pub fn parse_bytes_flag(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    crate::ops::volume::parse::ram_in_bytes(s)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| {
            PlainError::invalid(format!(
                "invalid argument \"{s}\" for \"{flag}\" flag: invalid size: '{s}'"
            ))
            .into()
        })
}

/// `--cpus N` as nano-CPUs, within what this host has.
pub fn parse_cpus(c: &str) -> Result<i64> {
    let v: f64 = c.parse().map_err(|_| {
        PlainError::invalid(format!(
            "invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number"
        ))
    })?;
    let nano = (v * 1e9).round() as i64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if nano < 10_000_000 || nano > ncpu * 1_000_000_000 {
        return Err(OpError::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        ))
        .into());
    }
    Ok(nano)
}

/// docker's `--restart` values.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let max = match count {
        None => 0,
        Some(c) => c.parse::<u32>().map_err(|_| {
            OpError::invalid(
                "invalid restart policy format: maximum retry count must be an integer",
            )
        })?,
    };
    match name {
        "no" | "always" | "unless-stopped" if count.is_some() => Err(OpError::invalid("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        .into()),
        "no" | "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
            name: name.to_owned(),
            maximum_retry_count: max,
        }),
        "" => Ok(RestartPolicy {
            name: "no".to_owned(),
            maximum_retry_count: 0,
        }),
        other => Err(OpError::invalid(format!("invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'")).into()),
    }
}

/// `--ulimit name=soft[:hard]`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let bad = || -> anyhow::Error {
        PlainError::invalid(format!(
            "invalid argument \"{s}\" for \"--ulimit\" flag: invalid ulimit argument: {s}"
        ))
        .into()
    };
    let (name, vals) = s.split_once('=').ok_or_else(bad)?;
    if crate::ops::container::spec::rlimit_kind(name).is_none() {
        return Err(PlainError::invalid(format!(
            "invalid argument \"{s}\" for \"--ulimit\" flag: invalid ulimit type: {name}"
        ))
        .into());
    }
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a, b),
        None => (vals, vals),
    };
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    if soft > hard && hard >= 0 {
        return Err(PlainError::invalid(format!(
            "invalid argument \"{s}\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ))
        .into());
    }
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

/// `--security-opt`: `seccomp=FILE` is read here, as docker's client does, and kept as
/// `seccomp=<profile JSON>`.
fn security_opt(s: &str) -> Result<String> {
    let (key, value) = s.split_once(['=', ':']).unwrap_or((s, ""));
    match key {
        "no-new-privileges" => Ok(s.to_owned()),
        "seccomp" if value == "unconfined" => Ok("seccomp=unconfined".to_owned()),
        "seccomp" => {
            let text = std::fs::read_to_string(value).map_err(|e| {
                PlainError::invalid(format!(
                    "opening seccomp profile ({value}) failed: open {value}: {}",
                    io_message(&e)
                ))
            })?;
            let compact: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                PlainError::invalid(format!("Decoding seccomp profile failed: {e}"))
            })?;
            Ok(format!("seccomp={compact}"))
        }
        "apparmor" | "label" => Ok(s.to_owned()),
        _ => Err(PlainError::invalid(format!("invalid --security-opt: {s:?}")).into()),
    }
}

fn parse_duration_flag(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => crate::ops::container::timeparse::parse_go_duration(s)
            .map(Some)
            .ok_or_else(|| {
                PlainError::invalid(format!(
                    "invalid argument \"{s}\" for \"{flag}\" flag: time: invalid duration \"{s}\""
                ))
                .into()
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse() {
        assert_eq!(
            parse_restart("on-failure:2").unwrap().maximum_retry_count,
            2
        );
        assert_eq!(parse_restart("always").unwrap().name, "always");
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
    }

    #[test]
    fn ulimits_parse() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
    }
}
