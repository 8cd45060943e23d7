//! The `skiff` binary: parse, run, and turn errors into docker's messages and exit codes.

use std::process::ExitCode;

use clap::Parser;
use skiff::cli::output::error_message;
use skiff::cli::{run, Cli};
use skiff::ops::error::Reported;

fn main() -> ExitCode {
    // The per-container monitor starts here, before any parsing (see `monitor_args`).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some((root, id, attach)) = skiff::monitor::monitor_args(&args) {
        let code = skiff::monitor::main(&root, &id, attach);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    drop(args);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
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
                eprintln!("Error response from daemon: {}", error_message(&e));
            }
            ExitCode::from(1)
        }
    }
}

/// Reports a command-line error the way docker's CLI does: an unknown flag exits 125 with
/// `unknown flag: --x` and a pointer to the help; a wrong argument count exits 1 with
/// `"skiff tag" requires exactly 2 arguments.` and the usage.
fn parse_failure(e: &clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ErrorKind};
    let usage = e
        .get(ContextKind::Usage)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let usage_line = usage
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage:").map(|u| u.trim().to_owned()))
        .unwrap_or_default();
    // "skiff image ls [OPTIONS] ..." -> "skiff image ls"
    let command: String = usage_line
        .split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .collect::<Vec<_>>()
        .join(" ");
    let command = if command.is_empty() {
        "skiff".to_owned()
    } else {
        command
    };
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::UnknownArgument if invalid_arg(e).starts_with('-') => {
            let arg = invalid_arg(e);
            match arg.strip_prefix('-').filter(|a| !a.starts_with('-')) {
                Some(short) => eprintln!(
                    "unknown shorthand flag: '{}' in {arg}",
                    short.chars().next().unwrap_or('?')
                ),
                None => eprintln!("unknown flag: {arg}"),
            }
            eprintln!("See '{command} --help'.");
            ExitCode::from(125)
        }
        // An unexpected word that is not a flag is one positional argument too many.
        ErrorKind::UnknownArgument
        | ErrorKind::MissingRequiredArgument
        | ErrorKind::TooManyValues
        | ErrorKind::WrongNumberOfValues => {
            let words: Vec<&str> = command.split_whitespace().collect();
            let count = match words.last().copied() {
                Some("tag") => "exactly 2 arguments",
                Some("history") => "exactly 1 argument",
                _ => "at least 1 argument",
            };
            eprintln!(
                "\"{command}\" requires {count}.\nSee '{command} --help'.\n\nUsage:  {usage_line}"
            );
            ExitCode::from(1)
        }
        _ => {
            let _ = e.print();
            // docker exits 125 when its own flags are wrong.
            ExitCode::from(125)
        }
    }
}

fn invalid_arg(e: &clap::Error) -> String {
    match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    }
}
