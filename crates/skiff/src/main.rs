//! The `skiff` binary: parse, run, and turn errors into docker's messages and exit codes.

use std::process::ExitCode;

use clap::Parser;
use skiff::cli::{run, Cli};
use skiff::ops::error::{kind_of, Reported};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let _ = e.print();
                    // docker exits 125 when its own flags are wrong.
                    ExitCode::from(125)
                }
            };
        }
    };
    let level = if cli.global.debug {
        "debug"
    } else {
        cli.global.log_level.as_str()
    };
    let level = if level == "fatal" { "error" } else { level };
    env_logger::Builder::new()
        .parse_filters(&format!(
            "skiff={level},skiff_image={level},skiff_snapshot={level}"
        ))
        .format_timestamp(None)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Reported>().is_none() {
                eprintln!("Error response from daemon: {}", message(&e));
            }
            let _ = kind_of(&e);
            ExitCode::from(1)
        }
    }
}

/// The user-facing text of an error: the outermost message with its causes, joined as Go
/// wraps errors ("context: cause").
fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
