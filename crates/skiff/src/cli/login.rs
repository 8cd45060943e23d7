//! `skiff login` and `skiff logout`.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::Result;
use clap::Args;
use skiff_registry::client::Credentials;

use super::GlobalOptions;
use crate::ops::error::PlainError;
use crate::ops::registry::login::{display_name, login, logout, saved, server_domain};

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long, value_name = "string")]
    pub username: Option<String>,
    /// Password or Personal Access Token (PAT)
    #[arg(short, long, value_name = "string")]
    pub password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn prompt(label: &str) -> Result<String> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{label}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn run_login(g: &GlobalOptions, a: LoginArgs) -> Result<()> {
    if a.password.is_some() && a.password_stdin {
        return Err(
            PlainError::invalid("--password and --password-stdin are mutually exclusive").into(),
        );
    }
    if a.password_stdin && a.username.is_none() {
        return Err(PlainError::invalid("Must provide --username with --password-stdin").into());
    }
    let domain = server_domain(a.server.as_deref());
    let mut password = a.password.clone();
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if a.password_stdin {
        // A password is bytes to docker: invalid UTF-8 is kept (lossily), not refused.
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes)?;
        let s = String::from_utf8_lossy(&bytes);
        password = Some(s.trim_end_matches(['\r', '\n']).to_owned());
    }
    let previous = saved(&domain)?;
    let username = match (&a.username, &previous) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) if password.is_none() && !p.username.is_empty() => p.username.clone(),
        _ => {
            if !std::io::stdin().is_terminal() && password.is_none() {
                return Err(PlainError::invalid(
                    "Error: Cannot perform an interactive login from a non TTY device",
                )
                .into());
            }
            prompt("Username: ")?
        }
    };
    let password = match password {
        Some(p) => p,
        None => match previous.filter(|p| p.username == username && a.username.is_none()) {
            Some(p) => {
                println!("Authenticating with existing credentials... [Username: {username}]");
                p.password
            }
            None => {
                if !std::io::stdin().is_terminal() {
                    return Err(PlainError::invalid(
                        "Error: Cannot perform an interactive login from a non TTY device",
                    )
                    .into());
                }
                prompt("Password: ")?
            }
        },
    };
    if username.is_empty() {
        return Err(PlainError::invalid("Error: Non-null Username Required").into());
    }
    if password.is_empty() {
        return Err(PlainError::invalid("Error: Password Required").into());
    }
    let creds = Credentials::new(&username, &password);
    let saved = login(&domain, &creds, &g.insecure_registries)?;
    if !saved.helper {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            saved.path.display()
        );
    }
    println!("Login Succeeded");
    Ok(())
}

pub fn run_logout(_g: &GlobalOptions, a: LogoutArgs) -> Result<()> {
    let domain = server_domain(a.server.as_deref());
    let name = display_name(&domain);
    if logout(&domain)? {
        println!("Removing login credentials for {name}");
    } else {
        println!("Not logged in to {name}");
    }
    Ok(())
}
