//! `skiff info`, `version`, `system df`, `system prune`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::format::{
    bytes_size, human_size, human_size_with_precision, render, time_ago, Format, Template,
};
use super::output::{confirm, go_time_string, now_secs, print_rows};
use super::GlobalOptions;

/// The Docker Engine API version whose behaviour skiff follows.
pub const API_VERSION: &str = "1.41";

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format the output using the given Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".to_owned())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

pub fn run_info(g: &GlobalOptions, a: InfoArgs) -> Result<()> {
    let engine = g.engine()?;
    let driver = engine.snapshotter()?.driver();
    let images = engine.meta.images()?.len();
    let (containers, _, _) = crate::ops::df::containers(&engine, false)?;
    let uname = rustix::system::uname();
    let info = json!({
        "ID": "",
        "Containers": containers.total, "ContainersRunning": containers.running,
        "ContainersPaused": containers.paused, "ContainersStopped": containers.stopped,
        "Images": images,
        "Driver": driver,
        "DriverStatus": [["Backing Filesystem", backing_fs(engine.root())]],
        "LoggingDriver": "json-file",
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "DockerRootDir": engine.root().display().to_string(),
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Debug": g.debug,
    });
    if let Some(f) = &a.format {
        println!("{}", Template::parse(f)?.execute(&info)?);
        return Ok(());
    }
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: {}", g.debug);
    println!();
    println!("Server:");
    println!(" Containers: {}", containers.total);
    println!("  Running: {}", containers.running);
    println!("  Paused: {}", containers.paused);
    println!("  Stopped: {}", containers.stopped);
    println!(" Images: {images}");
    println!(" Server Version: {}", env!("CARGO_PKG_VERSION"));
    println!(" Storage Driver: {driver}");
    println!("  Backing Filesystem: {}", backing_fs(engine.root()));
    println!(" Logging Driver: json-file");
    println!(
        " Kernel Version: {}",
        info["KernelVersion"].as_str().unwrap_or_default()
    );
    println!(
        " Operating System: {}",
        info["OperatingSystem"].as_str().unwrap_or_default()
    );
    println!(" OSType: linux");
    println!(" Architecture: {}", std::env::consts::ARCH);
    println!(" CPUs: {}", info["NCPU"]);
    println!(" Total Memory: {}", bytes_size(mem_total()));
    println!(" Name: {}", info["Name"].as_str().unwrap_or_default());
    println!(" Docker Root Dir: {}", engine.root().display());
    println!(" Debug Mode: {}", g.debug);
    // docker ends its report with an empty line.
    println!();
    Ok(())
}

/// The filesystem type under the root, named as docker names it ("extfs", "xfs", ...).
fn backing_fs(root: &std::path::Path) -> &'static str {
    match rustix::fs::statfs(root) {
        Ok(s) => match s.f_type as u64 {
            0xEF53 => "extfs",
            0x5846_5342 => "xfs",
            0x9123_683E => "btrfs",
            0x0102_1994 => "tmpfs",
            0x794C_7630 => "overlayfs",
            0x2FC1_2FC1 => "zfs",
            _ => "<unknown>",
        },
        Err(_) => "<unknown>",
    }
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format the output using the given Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
}

pub fn run_version(_g: &GlobalOptions, a: VersionArgs) -> Result<()> {
    let arch = skiff_image::spec::Platform::host().architecture;
    let v = json!({
        "Client": {
            "Platform": { "Name": "skiff" },
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION,
            "Os": "linux",
            "Arch": arch,
            "Context": "default",
        }
    });
    if let Some(f) = &a.format {
        println!("{}", Template::parse(f)?.execute(&v)?);
        return Ok(());
    }
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       {API_VERSION}");
    println!(" OS/Arch:           linux/{arch}");
    println!(" Context:           default");
    Ok(())
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Pretty-print images using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

fn reclaimable(bytes: u64, total: u64) -> String {
    if total == 0 {
        return human_size(bytes);
    }
    format!("{} ({}%)", human_size(bytes), bytes * 100 / total)
}

pub fn run_df(g: &GlobalOptions, a: DfArgs) -> Result<()> {
    let engine = g.engine()?;
    if a.verbose {
        return run_df_verbose(&engine, a.format.as_deref());
    }
    let du = crate::ops::df::disk_usage(&engine)?;
    let rows = vec![
        json!({"Type": "Images", "TotalCount": du.images.to_string(), "Active": du.active_images.to_string(),
               "Size": human_size(du.images_size), "Reclaimable": reclaimable(du.reclaimable, du.images_size)}),
        json!({"Type": "Containers", "TotalCount": du.containers.total.to_string(),
               "Active": (du.containers.running + du.containers.paused).to_string(),
               "Size": human_size(du.containers_size),
               "Reclaimable": reclaimable(du.containers_reclaimable, du.containers_size)}),
        json!({"Type": "Local Volumes", "TotalCount": du.volumes.to_string(), "Active": du.active_volumes.to_string(),
               "Size": human_size(du.volumes_size), "Reclaimable": reclaimable(du.volumes_reclaimable, du.volumes_size)}),
        json!({"Type": "Build Cache", "TotalCount": du.build_cache.to_string(), "Active": "0",
               "Size": human_size(du.build_cache_size), "Reclaimable": human_size(du.build_cache_size)}),
    ];
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print_rows(
        a.format.as_deref(),
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &headers,
        &rows,
        "*formatter.diskUsageImagesContext",
    )
}

/// docker's `stringid.TruncateID`: the part after any `algo:` prefix, at most 12 characters.
fn truncate_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    &id[..id.len().min(12)]
}

/// `system df -v`: docker 20.10's four tables, or one template run over all four lists
/// (`{{range .Images}}...`), the ids then untruncated as docker does for non-table formats.
fn run_df_verbose(engine: &crate::ops::engine::Engine, format: Option<&str>) -> Result<()> {
    let du = crate::ops::df::verbose_usage(engine)?;
    // Tables truncate ids; other formats show them whole.
    let table = matches!(format, None | Some("") | Some("table"));
    let now = time::OffsetDateTime::now_utc();
    let now_s = now_secs();
    let images: Vec<serde_json::Value> = du
        .images
        .iter()
        .map(|i| {
            let id = i.image.id.to_string();
            json!({
                "Containers": i.containers.to_string(),
                "CreatedAt": go_time_string(i.image.created),
                "CreatedSince": time_ago(i.image.created, now_s),
                // df's listing carries no digests (docker prints an empty one).
                "Digest": "",
                "ID": if table { truncate_id(&id).to_owned() } else { id },
                "Repository": i.repository,
                "SharedSize": human_size(i.shared),
                "Size": human_size_with_precision(i.image.size, 3),
                "Tag": i.tag,
                "UniqueSize": human_size(i.image.size.saturating_sub(i.shared)),
                "VirtualSize": human_size(i.image.size),
            })
        })
        .collect();
    // Like docker, df shows a container's writable layer without the virtual size.
    let containers: Vec<serde_json::Value> = du
        .containers
        .iter()
        .map(|r| {
            let rw = r.size.map_or(0, |(rw, _)| rw);
            super::container_life::ps_row(&r.container, &r.state, Some((rw, 0)), table, now, now_s)
        })
        .collect();
    let volumes: Vec<serde_json::Value> = du
        .volumes
        .iter()
        .map(|v| {
            let labels: Vec<String> = v
                .volume
                .labels()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            json!({
                "Driver": v.volume.driver,
                "Labels": labels.join(","),
                "Links": v.links.to_string(),
                "Mountpoint": v.volume.mountpoint.to_string_lossy(),
                "Name": v.volume.name,
                "Scope": v.volume.scope,
                "Size": human_size(v.size),
            })
        })
        .collect();
    let cache: Vec<serde_json::Value> = du
        .cache
        .iter()
        .map(|c| {
            let r = &c.record;
            // Only a parent that is itself listed is shown (the first step's parent is the
            // base image, not a cache entry), as BuildKit links records only to records.
            let parent = if du.cache.iter().any(|p| p.record.key == r.parent) {
                r.parent.as_str()
            } else {
                ""
            };
            let (id, parent) = if table {
                (
                    truncate_id(&r.key).to_owned(),
                    truncate_id(parent).to_owned(),
                )
            } else {
                (r.key.clone(), parent.to_owned())
            };
            json!({
                // Every entry is a step's result: BuildKit's "regular" (snapshot) records.
                "CacheType": "regular",
                "CreatedAt": go_time_string(r.created),
                "CreatedSince": time_ago(r.created, now_s),
                "Description": r.instruction,
                "ID": id,
                // A running build does not mark its entries, so none shows as in use.
                "InUse": "false",
                "LastUsedAt": go_time_string(r.last_used),
                "LastUsedSince": time_ago(r.last_used, now_s),
                "Parent": parent,
                "Shared": c.shared.to_string(),
                "Size": human_size_with_precision(r.size, 3),
                // The cache does not count its uses: docker's word for an unknown value.
                "UsageCount": "N/A",
            })
        })
        .collect();
    if !table {
        let src = format.unwrap_or_default();
        let src = src.strip_prefix("table").unwrap_or(src);
        let src = src
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let data = json!({
            "BuildCache": cache, "Containers": containers, "Images": images, "Volumes": volumes,
        });
        // docker runs this template itself, not through a list formatter, so an execution
        // error has no "template parsing error" prefix.
        let text = Template::parse(&src)?
            .typed("*formatter.diskUsageContext", &[])
            .execute(&data)
            .map_err(|e| crate::ops::error::PlainError::invalid(e.go_message()))?;
        // docker runs the template once and adds no newline.
        print!("{text}");
        return Ok(());
    }
    let section = |default: &str, headers: &serde_json::Value, rows: &[serde_json::Value]| {
        render(&Format::Table(None), default, headers, rows)
    };
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&section(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.VirtualSize}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                "Containers": "CONTAINERS"}),
        &images,
    )?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&section(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &super::container_life::ps_headers(),
        &containers,
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&section(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        &volumes,
    )?);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(du.cache_size())
    ));
    out.push_str(&section(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}),
        &cache,
    )?);
    print!("{out}");
    Ok(())
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune volumes
    #[arg(long)]
    pub volumes: bool,
}

pub fn run_prune(g: &GlobalOptions, a: PruneArgs) -> Result<()> {
    let images_line = if a.all {
        "  - all images without at least one container associated to them"
    } else {
        "  - all dangling images"
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers\n{}{images_line}\n  - all dangling build cache\n",
        if a.volumes { "  - all volumes not used by at least one container\n" } else { "" }
    );
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
        return Ok(());
    }
    let engine = g.engine()?;
    let report = crate::ops::prune::prune_images(&engine, a.all, &Default::default())?;
    super::tag::print_prune_report(&report);
    Ok(())
}
