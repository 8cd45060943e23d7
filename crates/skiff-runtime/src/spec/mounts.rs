//! The container's mounts: docker's defaults, minus those a user mount replaces, then the
//! user's binds and tmpfs mounts, parents before children.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};

use super::{oci_err, ContainerSpec, MountSpec, NamespaceMode};
use crate::defaults;
use crate::error::Error;

/// Docker's default mounts (minus those a user mount replaces), then the user's mounts,
/// parents before children.
pub(super) fn mounts(c: &ContainerSpec) -> Result<Vec<Mount>, Error> {
    let privileged = c.security.privileged;
    let defaults = defaults::default_mounts(&defaults::MountOptions {
        shm_size: c.shm_size,
        read_only_sys: false,
        privileged,
    });
    let mut user: Vec<(String, &MountSpec)> = Vec::with_capacity(c.mounts.len());
    for m in &c.mounts {
        user.push((clean_destination(m.destination())?, m));
    }
    // Parents first: a mount on /a must come before one on /a/b (stable for equal depth).
    user.sort_by_key(|(dest, _)| dest.matches('/').count());
    let replaces_dev = user.iter().any(|(d, _)| d == "/dev");

    let mut out = Vec::with_capacity(defaults.len() + user.len());
    for m in defaults {
        let dest = m.destination().to_string_lossy().into_owned();
        if user.iter().any(|(d, _)| *d == dest) || (replaces_dev && dest.starts_with("/dev/")) {
            continue;
        }
        if dest == "/dev/shm" && c.namespaces.ipc == NamespaceMode::Host {
            out.push(bind_mount(
                "/dev/shm",
                Path::new("/dev/shm"),
                &["rbind", "rprivate"],
            )?);
            continue;
        }
        out.push(m);
    }
    for (dest, m) in user {
        out.push(match m {
            MountSpec::Bind {
                source,
                readonly,
                propagation,
                ..
            } => {
                if !source.is_absolute() {
                    return Err(Error::InvalidSpec(format!(
                        "invalid mount config for type \"bind\": invalid mount path: \
                         '{}' mount path must be absolute",
                        source.display()
                    )));
                }
                let mut opts = vec!["rbind"];
                if *readonly {
                    opts.push("ro");
                }
                opts.push(propagation.option());
                bind_mount(&dest, source, &opts)?
            }
            MountSpec::Tmpfs { options, .. } => MountBuilder::default()
                .destination(PathBuf::from(&dest))
                .typ("tmpfs")
                .source(PathBuf::from("tmpfs"))
                .options(tmpfs_options(options))
                .build()
                .map_err(oci_err)?,
        });
    }
    Ok(out)
}

fn bind_mount(dest: &str, source: &Path, options: &[&str]) -> Result<Mount, Error> {
    MountBuilder::default()
        .destination(PathBuf::from(dest))
        .typ("bind")
        .source(source.to_owned())
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(oci_err)
}

/// Docker's tmpfs defaults (`nosuid,nodev,noexec`) merged with the user's options: `exec`,
/// `dev` and `suid` cancel their negations, and a later `size=`/`mode=` replaces an earlier.
fn tmpfs_options(user: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ["nosuid", "nodev", "noexec"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for opt in user {
        let opt = opt.trim();
        if opt.is_empty() {
            continue;
        }
        let key = opt.split_once('=').map_or(opt, |(k, _)| k);
        let opposite = match key {
            "exec" => Some("noexec"),
            "noexec" => Some("exec"),
            "dev" => Some("nodev"),
            "nodev" => Some("dev"),
            "suid" => Some("nosuid"),
            "nosuid" => Some("suid"),
            "ro" => Some("rw"),
            "rw" => Some("ro"),
            _ => None,
        };
        out.retain(|o| {
            let k = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
            k != key && Some(k) != opposite
        });
        out.push(opt.to_owned());
    }
    out
}

/// An absolute, normalized container path: `/a/./b/` -> `/a/b`; `..` is refused.
fn clean_destination(dest: &str) -> Result<String, Error> {
    let path = Path::new(dest);
    if !path.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "invalid mount config: invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => {
                out.push('/');
                out.push_str(&part.to_string_lossy());
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::InvalidSpec(format!(
                    "invalid mount path '{dest}': '..' is not allowed"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidSpec(
            "invalid mount config: a mount on '/' is not allowed".to_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_user_options_override_docker_defaults() {
        assert_eq!(tmpfs_options(&[]), ["nosuid", "nodev", "noexec"]);
        assert_eq!(
            tmpfs_options(&["exec".into(), "size=64m".into(), "mode=1777".into()]),
            ["nosuid", "nodev", "exec", "size=64m", "mode=1777"]
        );
        assert_eq!(
            tmpfs_options(&["size=1m".into(), "size=2m".into()]),
            ["nosuid", "nodev", "noexec", "size=2m"]
        );
    }

    #[test]
    fn mount_destinations_are_cleaned_and_checked() {
        assert_eq!(clean_destination("/a/./b/").unwrap(), "/a/b");
        assert!(clean_destination("relative").is_err());
        assert!(clean_destination("/a/../etc").is_err());
        assert!(clean_destination("/").is_err());
    }
}
