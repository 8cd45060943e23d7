//! The command line: docker's commands, flags and output. Each command parses its arguments
//! into options, calls one operation in `crate::ops`, and prints the result.

pub mod archive;
pub mod build;
pub mod build_progress;
pub mod buildx;
pub mod container;
pub mod container_attach;
pub mod container_exec;
pub mod container_fs;
pub mod container_life;
pub mod container_misc;
pub mod format;
pub mod history;
pub mod images;
pub mod inspect;
pub mod login;
pub mod output;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod search;
pub mod system;
pub mod tag;
pub mod volume;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::ops::engine::Engine;
use crate::ops::error::{PlainError, Reported};

/// A daemonless, Docker-compatible container engine.
#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options that come before the command, as docker's do (`skiff --root DIR images`).
#[derive(Args, Debug, Clone)]
pub struct GlobalOptions {
    /// Root directory of persistent skiff state
    #[arg(
        long,
        env = "SKIFF_ROOT",
        default_value = "/var/lib/skiff",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Storage driver to use ("overlay" or "vfs"; default: overlay where the kernel supports it)
    #[arg(
        long = "storage-driver",
        env = "SKIFF_STORAGE_DRIVER",
        value_name = "NAME"
    )]
    pub storage_driver: Option<String>,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(long = "log-level", short = 'l', default_value = "info", value_name = "LEVEL",
          value_parser = ["debug", "info", "warn", "error", "fatal"])]
    pub log_level: String,
    /// Enable debug mode
    #[arg(long, short = 'D')]
    pub debug: bool,
    /// Registries that may be reached over plain HTTP or with unverified TLS (repeatable;
    /// also SKIFF_INSECURE_REGISTRIES, comma-separated)
    #[arg(
        long = "insecure-registry",
        env = "SKIFF_INSECURE_REGISTRIES",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    pub insecure_registries: Vec<String>,
}

impl GlobalOptions {
    pub fn engine(&self) -> Result<Engine> {
        if let Some(d) = &self.storage_driver {
            if !skiff_snapshot::DRIVERS.contains(&d.as_str()) {
                return Err(crate::ops::error::OpError::invalid(format!(
                    "unknown storage driver {d:?} (supported: {})",
                    skiff_snapshot::DRIVERS.join(", ")
                ))
                .into());
            }
        }
        Engine::open(&self.root, self.storage_driver.as_deref())
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Containers(container::TopCommand),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Docker Buildx: build records (`buildx history`)
    #[command(subcommand)]
    Buildx(buildx::BuildxCommand),
    /// List images
    Images(images::ImagesArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(archive::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Remove one or more images
    Rmi(tag::RmiArgs),
    /// Return low-level information on skiff objects
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(archive::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(archive::LoadArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Show the skiff version information
    Version(system::VersionArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Log in to a registry
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Search a registry for images
    Search(search::SearchArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage skiff
    #[command(subcommand)]
    System(SystemCommand),
    /// Run or maintain a registry server
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Copy files/folders between a container and the local filesystem
    Cp(container_fs::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container_fs::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(container_fs::ExportArgs),
    /// Create a new image from a container's changes
    Commit(container_fs::CommitArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(tag::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(archive::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(archive::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(archive::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Remove unused images
    Prune(tag::PruneArgs),
    /// Mount an image's root filesystem read-only and print the mountpoint
    Mount(tag::MountArgs),
    /// Unmount an image mounted with `image mount`
    #[command(visible_alias = "umount")]
    Unmount(tag::MountArgs),
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Remove build cache
    Prune(build::BuilderPruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show skiff disk usage
    Df(system::DfArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Remove unused data
    Prune(system::PruneArgs),
}

/// Runs one parsed command line. Errors docker's CLI prints without the
/// `Error response from daemon: ` prefix (client-side checks, template errors, errors that
/// `load` streams) are printed here as they are and handed back as already reported.
pub fn run(cli: Cli) -> Result<()> {
    dispatch(cli).map_err(|e| {
        if e.downcast_ref::<Reported>().is_some() {
            return e;
        }
        match plain_message(&e) {
            Some(msg) => {
                eprintln!("{msg}");
                Reported(e).into()
            }
            None => e,
        }
    })
}

/// The text of an error docker prints without the daemon prefix, if `e` is one.
fn plain_message(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(p) = cause.downcast_ref::<PlainError>() {
            return Some(p.message.clone());
        }
        cause
            .downcast_ref::<format::TemplateError>()
            .map(ToString::to_string)
    })
}

fn dispatch(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Containers(c) => container::run(g, c),
        Command::Build(a) | Command::Builder(BuilderCommand::Build(a)) => build::run(g, *a),
        Command::Builder(BuilderCommand::Prune(a)) => build::run_builder_prune(g, a),
        Command::Buildx(c) => buildx::run(g, c),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(g, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => archive::run_import(g, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => pull::run(g, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => push::run(g, a),
        Command::Login(a) => login::run_login(g, a),
        Command::Logout(a) => login::run_logout(g, a),
        Command::Search(a) => search::run(g, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => tag::run_tag(g, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => tag::run_rmi(g, a),
        Command::Inspect(a) => inspect::run(g, a, false),
        Command::Image(ImageCommand::Inspect(a)) => inspect::run(g, a, true),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(g, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::run_save(g, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::run_load(g, a),
        Command::Image(ImageCommand::Prune(a)) => tag::run_prune(g, a),
        Command::Image(ImageCommand::Mount(a)) => tag::run_mount(g, a),
        Command::Image(ImageCommand::Unmount(a)) => tag::run_unmount(g, a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => system::run_info(g, a),
        Command::Version(a) => system::run_version(g, a),
        Command::System(SystemCommand::Df(a)) => system::run_df(g, a),
        Command::System(SystemCommand::Prune(a)) => system::run_prune(g, a),
        Command::Registry(c) => registry::run(g, c),
        Command::Volume(c) => volume::run(g, c),
        Command::Cp(a) => container_fs::run_cp(g, a),
        Command::Diff(a) => container_fs::run_diff(g, a),
        Command::Export(a) => container_fs::run_export(g, a),
        Command::Commit(a) => container_fs::run_commit(g, a),
    }
}
