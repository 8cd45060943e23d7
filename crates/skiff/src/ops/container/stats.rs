//! `skiff stats`: CPU, memory, block I/O and pids of running containers, read from their
//! cgroups (v1 or v2).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::reconcile;
use super::store::{Container, ContainerStore};
use crate::ops::engine::Engine;

/// One container's numbers.
#[derive(Debug, Clone)]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// Percent of one CPU (docker's scale: 200% is two CPUs busy).
    pub cpu_percent: f64,
    /// Memory in use (without the page cache docker leaves out) and the limit.
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

fn cgroup_dirs(c: &Container) -> Vec<PathBuf> {
    let Ok(info) = skiff_runtime::cgroups::CgroupInfo::detect() else {
        return Vec::new();
    };
    let parent = if c.host_config.cgroup_parent.is_empty() {
        skiff_runtime::spec::DEFAULT_CGROUP_PARENT
    } else {
        c.host_config.cgroup_parent.as_str()
    };
    let path = format!("{}/{}", parent.trim_end_matches('/'), c.id);
    skiff_runtime::cgroups::container_dirs(&info, &path).unwrap_or_default()
}

/// The first of `files` that exists in one of `dirs`, read.
fn read_any(dirs: &[PathBuf], files: &[&str]) -> Option<String> {
    files.iter().find_map(|f| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(f)).ok())
    })
}

fn num(s: Option<String>) -> Option<u64> {
    s.and_then(|v| v.trim().parse().ok())
}

/// `key value` lines (memory.stat, cpu.stat).
fn field(text: &Option<String>, key: &str) -> Option<u64> {
    text.as_ref()?.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

/// CPU time used by the cgroup so far, in nanoseconds.
fn cpu_nanos(dirs: &[PathBuf]) -> Option<u64> {
    if let Some(n) = num(read_any(dirs, &["cpuacct.usage"])) {
        return Some(n);
    }
    field(&read_any(dirs, &["cpu.stat"]), "usage_usec").map(|u| u * 1000)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn snapshot(c: &Container, dirs: &[PathBuf]) -> Stats {
    let stat = read_any(dirs, &["memory.stat"]);
    let usage = num(read_any(dirs, &["memory.usage_in_bytes", "memory.current"])).unwrap_or(0);
    // docker's CLI subtracts the inactive file cache (v1: total_inactive_file, v2:
    // inactive_file).
    let cache = field(&stat, "total_inactive_file")
        .or_else(|| field(&stat, "inactive_file"))
        .unwrap_or(0);
    let host = host_memory();
    let limit = match read_any(dirs, &["memory.limit_in_bytes", "memory.max"]) {
        Some(v) if v.trim() != "max" => v.trim().parse::<u64>().unwrap_or(host).min(host),
        _ => host,
    };
    let (mut read, mut write) = (0, 0);
    if let Some(io) = read_any(dirs, &["blkio.throttle.io_service_bytes", "io.stat"]) {
        for l in io.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            // v1: "8:0 Read 4096"; v2: "8:0 rbytes=4096 wbytes=0 ...".
            match w.as_slice() {
                [_, "Read", n] => read += n.parse::<u64>().unwrap_or(0),
                [_, "Write", n] => write += n.parse::<u64>().unwrap_or(0),
                [_, rest @ ..] => {
                    for kv in rest {
                        if let Some(n) = kv.strip_prefix("rbytes=") {
                            read += n.parse::<u64>().unwrap_or(0);
                        } else if let Some(n) = kv.strip_prefix("wbytes=") {
                            write += n.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Stats {
        id: c.id.clone(),
        name: c.name.clone(),
        cpu_percent: 0.0,
        mem_usage: usage.saturating_sub(cache),
        mem_limit: limit,
        block_read: read,
        block_write: write,
        pids: num(read_any(dirs, &["pids.current"])).unwrap_or(0),
    }
}

/// The numbers of each container in `containers` that runs, CPU measured over `window`.
pub fn stats(
    engine: &Engine,
    store: &ContainerStore,
    containers: &[Container],
    window: Duration,
) -> Result<Vec<Stats>> {
    let mut running = Vec::new();
    for c in containers {
        if reconcile::state(engine.root(), store, c)?.running {
            let dirs = cgroup_dirs(c);
            running.push((c, cpu_nanos(&dirs), dirs));
        }
    }
    let began = Instant::now();
    std::thread::sleep(window);
    let elapsed = began.elapsed().as_nanos() as f64;
    Ok(running
        .into_iter()
        .map(|(c, before, dirs)| {
            let mut s = snapshot(c, &dirs);
            if let (Some(b), Some(a)) = (before, cpu_nanos(&dirs)) {
                s.cpu_percent = a.saturating_sub(b) as f64 / elapsed * 100.0;
            }
            s
        })
        .collect())
}
