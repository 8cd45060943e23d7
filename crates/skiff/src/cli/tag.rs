//! `skiff tag`, `rmi`, `image prune`, `image mount` / `unmount`.

use anyhow::Result;
use clap::Args;

use super::format::human_size;
use super::output::confirm;
use super::GlobalOptions;
use crate::ops::rmi::{remove_image, RmiEvent};

#[derive(Args, Debug)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub fn run_tag(g: &GlobalOptions, a: TagArgs) -> Result<()> {
    crate::ops::tag::tag(&g.engine()?, &a.source, &a.target)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

fn print_events(events: &[RmiEvent]) {
    for e in events {
        match e {
            RmiEvent::Untagged(t) => println!("Untagged: {t}"),
            RmiEvent::Deleted(id) => println!("Deleted: {id}"),
        }
    }
}

pub fn run_rmi(g: &GlobalOptions, a: RmiArgs) -> Result<()> {
    let engine = g.engine()?;
    let mut first_error = None;
    // docker removes what it can and reports each failure, then exits non-zero.
    for name in &a.images {
        match remove_image(&engine, name, a.force, !a.no_prune) {
            Ok(events) => print_events(&events),
            // docker's CLI reports images that are already gone but, when forced, does not fail.
            Err(e)
                if a.force
                    && crate::ops::error::kind_of(&e) == crate::ops::error::ErrorKind::NotFound =>
            {
                eprintln!("Error response from daemon: {e}");
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(crate::ops::error::Reported(e).into()),
        None => Ok(()),
    }
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long = "filter", value_name = "filter", value_parser = super::images::filter_arg)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run_prune(g: &GlobalOptions, a: PruneArgs) -> Result<()> {
    let filters = crate::ops::prune::PruneFilters::parse(&a.filter, super::output::now_secs())?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
        return Ok(());
    }
    let engine = g.engine()?;
    let report = crate::ops::prune::prune_images(&engine, a.all, &filters)?;
    print_prune_report(&report);
    Ok(())
}

/// docker's prune summary: what was untagged and deleted, then the space reclaimed.
pub fn print_prune_report(report: &crate::ops::prune::PruneReport) {
    if !report.events.is_empty() {
        println!("Deleted Images:");
        for e in &report.events {
            match e {
                RmiEvent::Untagged(t) => println!("untagged: {t}"),
                RmiEvent::Deleted(id) => println!("deleted: {id}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
}

#[derive(Args, Debug)]
pub struct MountArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run_mount(g: &GlobalOptions, a: MountArgs) -> Result<()> {
    let engine = g.engine()?;
    for image in &a.images {
        let path = crate::ops::mount::mount_image(&engine, image)?;
        println!("{}", path.display());
    }
    Ok(())
}

pub fn run_unmount(g: &GlobalOptions, a: MountArgs) -> Result<()> {
    let engine = g.engine()?;
    for image in &a.images {
        crate::ops::mount::unmount_image(&engine, image)?;
    }
    Ok(())
}
