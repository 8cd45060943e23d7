//! `skiff import`, `skiff save` and `skiff load`: images in and out as tar streams.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::progress::Progress;
use super::GlobalOptions;
use crate::ops::error::OpError;
use crate::ops::import::{import, ImportOptions};
use crate::ops::tag::parse_new_tag;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

pub fn run_import(g: &GlobalOptions, a: ImportArgs) -> Result<()> {
    if let Some(p) = &a.platform {
        let host = skiff_image::spec::Platform::host();
        if p != &format!("{}/{}", host.os, host.architecture) && p != &host.os {
            return Err(OpError::invalid(format!(
                "platform {p} is not supported on this host ({}/{})",
                host.os, host.architecture
            ))
            .into());
        }
    }
    let tag = a.reference.as_deref().map(parse_new_tag).transpose()?;
    let engine = g.engine()?;
    let opts = ImportOptions {
        source_name: a.source.clone(),
        changes: a.change.clone(),
        message: a.message.clone(),
        tag,
    };
    let id = if a.source == "-" {
        let progress = Progress::new("Importing", None, false);
        let id = import(&engine, progress.reader(io::stdin().lock()), &opts)?;
        progress.finish();
        id
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        let response = ureq::get(&a.source)
            .call()
            .with_context(|| format!("fetching {}", a.source))?;
        let total = response.body().content_length();
        let progress = Progress::new("Importing", total, false);
        let id = import(
            &engine,
            progress.reader(response.into_body().into_reader()),
            &opts,
        )?;
        progress.finish();
        id
    } else {
        let (file, len) = open_input(Path::new(&a.source))?;
        let progress = Progress::new("Importing", Some(len), false);
        let id = import(&engine, progress.reader(file), &opts)?;
        progress.finish();
        id
    };
    println!("{id}");
    Ok(())
}

fn open_input(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| {
        OpError::new(
            skiff_image::error::io_kind(&e),
            format!("open {}: {}", path.display(), io_error_text(&e)),
        )
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}

/// Go's wording for the common I/O errors ("no such file or directory").
fn io_error_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run_save(g: &GlobalOptions, a: SaveArgs) -> Result<()> {
    let engine = g.engine()?;
    match &a.output {
        None => {
            if io::stdout().is_terminal() {
                return Err(OpError::invalid(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                )
                .into());
            }
            let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            crate::ops::save::save(&engine, &a.images, out)
        }
        Some(path) => {
            // Write beside the target and rename, so a failed save never leaves a torn file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".skiff-save-")
                .tempfile_in(dir)
                .map_err(|e| {
                    OpError::invalid(format!(
                        "failed to save image: invalid output path: {}: {}",
                        path.display(),
                        io_error_text(&e)
                    ))
                })?;
            let progress = Progress::new("Saving", None, false);
            {
                let mut out = BufWriter::with_capacity(1 << 20, progress.writer(tmp.as_file()));
                crate::ops::save::save(&engine, &a.images, &mut out)?;
                out.flush()?;
            }
            progress.finish();
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            let perms = std::os::unix::fs::PermissionsExt::from_mode(0o644);
            std::fs::set_permissions(path, perms)?;
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run_load(g: &GlobalOptions, a: LoadArgs) -> Result<()> {
    let engine = g.engine()?;
    let loaded = match &a.input {
        Some(path) => {
            let (file, len) = open_input(path)?;
            let progress = Progress::new("Loading layer", Some(len), a.quiet);
            let r = crate::ops::load::load(&engine, progress.reader(file));
            progress.finish();
            r?
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(
                    OpError::invalid("requested load from stdin, but stdin is empty").into(),
                );
            }
            let progress = Progress::new("Loading layer", None, a.quiet);
            let r = crate::ops::load::load(&engine, progress.reader(stdin.lock()));
            progress.finish();
            r?
        }
    };
    let mut out = io::stdout().lock();
    for (tag, old) in &loaded.renamed {
        writeln!(
            out,
            "The image {tag} already exists, renaming the old one with ID {old} to empty string"
        )?;
    }
    for tag in &loaded.tags {
        writeln!(out, "Loaded image: {tag}")?;
    }
    for id in &loaded.ids {
        writeln!(out, "Loaded image ID: {id}")?;
    }
    Ok(())
}
