//! `skiff import`, `skiff save` and `skiff load`: images in and out as tar streams.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::progress::Progress;
use super::GlobalOptions;
use crate::ops::error::{kind_of, OpError, PlainError};
use crate::ops::import::{import, ImportOptions};
use crate::ops::load::LoadLine;
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
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    // As docker's CLI: the file is opened first, then the name checked, both on the client.
    let file = if a.source == "-" || is_url {
        None
    } else {
        Some(open_input(Path::new(&a.source))?)
    };
    let tag = a.reference.as_deref().map(import_tag).transpose()?;
    let engine = g.engine()?;
    let opts = ImportOptions {
        // docker streams files as the request body: the daemon records them as from `-`.
        source_name: if is_url { a.source.clone() } else { "-".into() },
        changes: a.change.clone(),
        message: a.message.clone(),
        tag,
    };
    let id = match file {
        Some((file, len)) => {
            let progress = Progress::new("Importing", Some(len), false);
            let id = import(&engine, progress.reader(file), &opts)?;
            progress.finish();
            id
        }
        None if is_url => {
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
        }
        None => {
            let progress = Progress::new("Importing", None, false);
            let id = import(&engine, progress.reader(io::stdin().lock()), &opts)?;
            progress.finish();
            id
        }
    };
    println!("{id}");
    Ok(())
}

/// The REPOSITORY[:TAG] of `import`: checked by docker's client (errors print without the
/// daemon prefix), except that a digest is refused by the daemon.
fn import_tag(reference: &str) -> Result<skiff_image::reference::Reference> {
    let parsed = skiff_image::reference::Reference::parse_normalized(reference)
        .map_err(|e| PlainError::invalid(e.to_string()))?;
    if parsed.digest().is_some() {
        return Err(OpError::invalid("cannot import digest reference").into());
    }
    parse_new_tag(reference)
}

fn open_input(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| {
        PlainError::new(
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
        io::ErrorKind::NotADirectory => "not a directory".into(),
        _ => e.to_string(),
    }
}

/// docker's `ValidateOutputPath`, checked by the client before it asks for the archive.
fn validate_output_path(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        if let Err(e) = std::fs::metadata(dir) {
            return Err(PlainError::invalid(format!(
                "failed to save image: invalid output path: stat {}: {}",
                dir.display(),
                io_error_text(&e)
            ))
            .into());
        }
    }
    Ok(())
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
    match &a.output {
        None if io::stdout().is_terminal() => {
            return Err(PlainError::invalid(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            )
            .into());
        }
        None => {}
        Some(path) => validate_output_path(path)?,
    }
    let engine = g.engine()?;
    match &a.output {
        None => {
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
    let input: Box<dyn io::Read> = match &a.input {
        Some(path) => Box::new(open_input(path)?.0),
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(
                    PlainError::invalid("requested load from stdin, but stdin is empty").into(),
                );
            }
            Box::new(stdin.lock())
        }
    };
    let total = a
        .input
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let engine = g.engine()?;
    let progress = Progress::new("Loading layer", total, a.quiet);
    let r = crate::ops::load::load(&engine, progress.reader(input));
    progress.finish();
    // docker streams load errors back as messages and prints them as they are.
    let loaded = r.map_err(|e| PlainError::new(kind_of(&e), format!("{e:#}")))?;
    let mut out = io::stdout().lock();
    for line in &loaded.lines {
        match line {
            LoadLine::Renamed(tag, old) => writeln!(
                out,
                "The image {tag} already exists, renaming the old one with ID {old} to empty string"
            )?,
            LoadLine::Tag(tag) => writeln!(out, "Loaded image: {tag}")?,
            LoadLine::Id(id) => writeln!(out, "Loaded image ID: {id}")?,
        }
    }
    Ok(())
}
