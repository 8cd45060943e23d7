//! `skiff registry serve` and `skiff registry gc`: the embedded registry server
//! (skiff_registry::server) and its garbage collector.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::format::human_size;
use super::GlobalOptions;
use crate::ops::error::{ErrorKind, PlainError};
use skiff_registry::server;

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Run a registry server (OCI distribution spec) in the foreground
    Serve(ServeArgs),
    /// Delete blobs that no manifest references
    Gc(GcArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
    pub addr: String,
    /// Registry storage directory (default: <skiff root>/registry)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Require Basic authentication against this htpasswd file (bcrypt entries)
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Refuse every write (push, delete)
    #[arg(long = "read-only")]
    pub read_only: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Registry storage directory (default: <skiff root>/registry)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Only list what would be deleted
    #[arg(long = "dry-run", short = 'd')]
    pub dry_run: bool,
}

fn registry_root(g: &GlobalOptions, root: Option<PathBuf>) -> PathBuf {
    root.unwrap_or_else(|| g.root.join("registry"))
}

fn plain(e: impl std::fmt::Display) -> anyhow::Error {
    PlainError::new(ErrorKind::Unavailable, e.to_string()).into()
}

pub fn run(g: &GlobalOptions, cmd: RegistryCommand) -> Result<()> {
    match cmd {
        RegistryCommand::Serve(a) => serve(g, a),
        RegistryCommand::Gc(a) => gc(g, a),
    }
}

fn serve(g: &GlobalOptions, a: ServeArgs) -> Result<()> {
    if a.tls_cert.is_some() != a.tls_key.is_some() {
        return Err(PlainError::invalid("--tls-cert and --tls-key must be given together").into());
    }
    let config = server::Config {
        addr: a.addr,
        root: registry_root(g, a.root),
        htpasswd: a.htpasswd,
        tls: a.tls_cert.zip(a.tls_key),
        read_only: a.read_only,
    };
    server::serve_blocking(&config, |addr| {
        // Tests and scripts read the bound port from this line (with --addr HOST:0).
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
    })
    .map_err(plain)
}

fn gc(g: &GlobalOptions, a: GcArgs) -> Result<()> {
    let report = server::gc(&registry_root(g, a.root), a.dry_run).map_err(plain)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let total: u64 = report.unreferenced.iter().map(|(_, s)| s).sum();
    for (digest, _) in &report.unreferenced {
        if a.dry_run {
            println!("blob eligible for deletion: {digest}");
        } else {
            println!("deleted: {digest}");
        }
    }
    println!(
        "{} blobs marked, {} blobs {}, {}",
        report.marked,
        report.unreferenced.len(),
        if a.dry_run {
            "eligible for deletion"
        } else {
            "deleted"
        },
        human_size(total)
    );
    Ok(())
}
