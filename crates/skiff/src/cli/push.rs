//! `skiff push` / `skiff image push`.

use anyhow::Result;
use clap::Args;

use super::pull::LayerPrinter;
use super::GlobalOptions;
use crate::ops::registry::push::{push, PushEvent, PushOptions};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Maximum number of layers uploaded at once
    #[arg(
        long = "max-concurrent-uploads",
        value_name = "int",
        default_value_t = 5
    )]
    pub max_concurrent_uploads: usize,
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

pub fn run(g: &GlobalOptions, a: PushArgs) -> Result<()> {
    let engine = g.engine()?;
    let printer = LayerPrinter::new(a.quiet);
    let has_tag = a
        .name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if !a.all_tags && !has_tag && !a.name.contains('@') {
        printer.line("Using default tag: latest");
    }
    let opts = PushOptions {
        all_tags: a.all_tags,
        max_concurrent: a.max_concurrent_uploads,
        insecure: g.insecure_registries.clone(),
    };
    let on = |ev: PushEvent| match ev {
        PushEvent::Refers(name) => printer.line(&format!("The push refers to repository [{name}]")),
        PushEvent::Layer { id, status } => printer.status(&id, &status),
        PushEvent::Progress { id, current, total } => {
            printer.progress(&id, "Pushing", current, total)
        }
        PushEvent::Pushed { tag, digest, size } => {
            printer.finish();
            printer.line(&format!("{tag}: digest: {digest} size: {size}"))
        }
    };
    let result = push(&engine, &a.name, &opts, &on);
    printer.finish();
    result?;
    if a.quiet {
        // docker prints the reference it pushed (normalized, with the default tag).
        if let Ok(r) = skiff_image::reference::Reference::parse_normalized(&a.name) {
            let r = if !a.all_tags && r.tag().is_none() {
                r.with_tag("latest").unwrap_or(r)
            } else {
                r
            };
            println!("{r}");
        }
    }
    Ok(())
}
