//! `skiff pause`, `unpause`, `rename`, `top`, `port`, `container prune`.

use anyhow::Result;
use clap::Args;

use super::format::human_size;
use super::output::confirm;
use super::GlobalOptions;
use crate::ops::container::ContainerStore;

#[derive(Args, Debug)]
pub struct ContainersArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

use super::container_life::each;

pub fn run_pause(g: &GlobalOptions, a: ContainersArgs) -> Result<()> {
    each(g, &a.containers, crate::ops::container::pause::pause)
}

pub fn run_unpause(g: &GlobalOptions, a: ContainersArgs) -> Result<()> {
    each(g, &a.containers, crate::ops::container::pause::unpause)
}

pub fn run_rename(g: &GlobalOptions, a: RenameArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    crate::ops::container::rename::rename(&store, &c, &a.new_name)
}

pub fn run_top(g: &GlobalOptions, a: TopArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    let (header, rows) = crate::ops::container::top::top(&engine, &store, &c, &a.ps_args)?;
    // docker re-aligns ps's columns with its tab writer.
    let mut text = String::new();
    for line in std::iter::once(&header).chain(rows.iter()) {
        let cols = header.split_whitespace().count();
        let fields: Vec<&str> = line
            .splitn(cols, char::is_whitespace)
            .filter(|s| !s.is_empty())
            .collect();
        let fields: Vec<String> = if fields.len() == cols {
            fields.iter().map(|s| s.trim().to_owned()).collect()
        } else {
            let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            let tail = words.split_off((cols - 1).min(words.len())).join(" ");
            words.push(tail);
            words
        };
        text.push_str(&fields.join("\t"));
        text.push('\n');
    }
    print!("{}", super::format::tabwrite(&text, 20, 3));
    Ok(())
}

pub fn run_port(g: &GlobalOptions, a: PortArgs) -> Result<()> {
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(&a.container)?;
    // No port is ever published (no bridge network yet): docker prints nothing then, and
    // this error for a named port.
    if let Some(p) = a.port {
        let p = if p.contains('/') {
            p
        } else {
            format!("{p}/tcp")
        };
        return Err(crate::ops::error::PlainError::new(
            crate::ops::error::ErrorKind::NotFound,
            format!("Error: No public port '{p}' published for {}", c.name),
        )
        .into());
    }
    Ok(())
}

pub fn run_prune(g: &GlobalOptions, a: PruneArgs) -> Result<()> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let pruned = crate::ops::container::prune::prune(&engine, &store, &a.filter)?;
    if !pruned.ids.is_empty() {
        println!("Deleted Containers:");
        for id in &pruned.ids {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(())
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run_stats(g: &GlobalOptions, a: StatsArgs) -> Result<()> {
    use super::format::{bytes_size, human_size_with_precision};
    use std::io::{IsTerminal, Write};
    let engine = g.engine()?;
    let store = ContainerStore::open(engine.root())?;
    let containers = if a.containers.is_empty() {
        store.list()?
    } else {
        a.containers
            .iter()
            .map(|n| store.get(n))
            .collect::<Result<Vec<_>>>()?
    };
    let headers = serde_json::json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    });
    let table = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
    let clear = !a.no_stream && std::io::stdout().is_terminal();
    loop {
        let stats = crate::ops::container::stats::stats(
            &engine,
            &store,
            &containers,
            std::time::Duration::from_millis(if a.no_stream { 500 } else { 1000 }),
        )?;
        let rows: Vec<serde_json::Value> = stats
            .iter()
            .map(|s| {
                let id = if a.no_trunc { s.id.clone() } else { s.id[..12].to_owned() };
                let mem_perc = if s.mem_limit > 0 {
                    s.mem_usage as f64 / s.mem_limit as f64 * 100.0
                } else {
                    0.0
                };
                serde_json::json!({
                    "ID": id,
                    "Container": id,
                    "Name": s.name,
                    "CPUPerc": format!("{:.2}%", s.cpu_percent),
                    "MemUsage": format!("{} / {}", bytes_size(s.mem_usage), bytes_size(s.mem_limit)),
                    "MemPerc": format!("{mem_perc:.2}%"),
                    "NetIO": "0B / 0B",
                    "BlockIO": format!("{} / {}", human_size_with_precision(s.block_read, 3), human_size_with_precision(s.block_write, 3)),
                    "PIDs": s.pids.to_string(),
                })
            })
            .collect();
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        super::output::print_rows(
            a.format.as_deref(),
            table,
            &headers,
            &rows,
            "*formatter.statsContext",
        )?;
        std::io::stdout().flush()?;
        if a.no_stream {
            return Ok(());
        }
    }
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run_update(g: &GlobalOptions, a: UpdateArgs) -> Result<()> {
    use super::container::{parse_bytes_flag, parse_cpus, parse_restart};
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref().map(|s| parse_bytes_flag(flag, s)).transpose()
    };
    let update = crate::ops::container::update::Update {
        memory: bytes("-m, --memory", &a.memory)?,
        memory_swap: bytes("--memory-swap", &a.memory_swap)?,
        memory_reservation: bytes("--memory-reservation", &a.memory_reservation)?,
        nano_cpus: a.cpus.as_deref().map(parse_cpus).transpose()?,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit,
        restart: a.restart.as_deref().map(parse_restart).transpose()?,
    };
    if update.is_empty() {
        return Err(crate::ops::error::PlainError::invalid(
            "you must provide one or more flags when using this command",
        )
        .into());
    }
    each(g, &a.containers, |engine, store, c| {
        for w in crate::ops::container::update::update(engine, store, c, &update)? {
            eprintln!("WARNING: {w}");
        }
        Ok(())
    })
}
