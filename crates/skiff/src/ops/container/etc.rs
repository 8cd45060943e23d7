//! The files a container sees as /etc/hostname, /etc/hosts and /etc/resolv.conf, kept in its
//! directory and bind-mounted over the image's, as docker does.

use anyhow::Result;

use super::store::{Container, ContainerStore, HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE};

/// docker's /etc/hosts for a container without a network address.
const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Writes the three files for `c` (atomically).
pub fn write_files(store: &ContainerStore, c: &Container) -> Result<()> {
    let dir = store.dir(&c.id);
    let host_net = c.host_config.network_mode == "host";
    let hostname = if c.config.hostname.is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_owned()
    } else {
        c.config.hostname.clone()
    };
    let hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| DEFAULT_HOSTS.to_owned())
    } else {
        DEFAULT_HOSTS.to_owned()
    };
    let resolv = resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        host_net,
    );
    write(&dir.join(HOSTNAME_FILE), format!("{hostname}\n").as_bytes())?;
    write(&dir.join(HOSTS_FILE), hosts.as_bytes())?;
    write(&dir.join(RESOLV_CONF_FILE), resolv.as_bytes())?;
    Ok(())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    super::store::write_file(path, bytes)
}

/// The host's resolv.conf as docker filters it for a container outside the host's network:
/// loopback name servers cannot be reached from there, so they are dropped, and when none is
/// left docker's defaults (Google's public DNS) are used.
pub fn resolv_conf(host: &str, host_net: bool) -> String {
    if host_net {
        return host.to_owned();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_dropped() {
        let r = resolv_conf("search x\nnameserver 127.0.0.53\noptions edns0\n", false);
        assert_eq!(
            r,
            "search x\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let r = resolv_conf("nameserver 10.0.0.1\n", false);
        assert_eq!(r, "nameserver 10.0.0.1\n");
    }
}
