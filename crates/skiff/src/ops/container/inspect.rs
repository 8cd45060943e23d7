//! `skiff inspect` of a container, in docker's shape.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::reconcile;
use super::store::{Container, ContainerStore, State, HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE};
use crate::ops::engine::Engine;

/// docker's `State` object (without skiff's bookkeeping fields).
pub fn state_json(s: &State) -> Value {
    let mut m = Map::new();
    m.insert("Status".into(), json!(s.status.as_str()));
    m.insert("Running".into(), json!(s.running));
    m.insert("Paused".into(), json!(s.paused));
    m.insert("Restarting".into(), json!(s.restarting));
    m.insert("OOMKilled".into(), json!(s.oom_killed));
    m.insert("Dead".into(), json!(s.dead));
    m.insert("Pid".into(), json!(s.pid));
    m.insert("ExitCode".into(), json!(s.exit_code));
    m.insert("Error".into(), json!(s.error));
    m.insert("StartedAt".into(), json!(s.started_at));
    m.insert("FinishedAt".into(), json!(s.finished_at));
    if let Some(h) = &s.health {
        m.insert(
            "Health".into(),
            serde_json::to_value(h).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// The inspect document of container `input`, or `Ok(None)` if there is no such container.
pub fn inspect_container(engine: &Engine, input: &str, size: bool) -> Result<Option<Value>> {
    let store = ContainerStore::open(engine.root())?;
    let Some(c) = store.lookup(input)? else {
        return Ok(None);
    };
    let state = reconcile::state(engine.root(), &store, &c)?;
    Ok(Some(document(engine, &store, &c, &state, size)?))
}

fn document(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    state: &State,
    size: bool,
) -> Result<Value> {
    let dir = store.dir(&c.id);
    let mut m = Map::new();
    m.insert("Id".into(), json!(c.id));
    m.insert("Created".into(), json!(c.created));
    m.insert("Path".into(), json!(c.path));
    m.insert("Args".into(), json!(c.args));
    m.insert("State".into(), state_json(state));
    m.insert("Image".into(), json!(c.image));
    m.insert("ResolvConfPath".into(), json!(dir.join(RESOLV_CONF_FILE)));
    m.insert("HostnamePath".into(), json!(dir.join(HOSTNAME_FILE)));
    m.insert("HostsPath".into(), json!(dir.join(HOSTS_FILE)));
    m.insert("LogPath".into(), json!(store.log_path(&c.id)));
    m.insert("Name".into(), json!(format!("/{}", c.name)));
    m.insert("RestartCount".into(), json!(state.restart_count));
    m.insert("Driver".into(), json!(c.driver));
    m.insert("Platform".into(), json!("linux"));
    m.insert("MountLabel".into(), json!(""));
    m.insert("ProcessLabel".into(), json!(""));
    m.insert("AppArmorProfile".into(), json!(""));
    m.insert("ExecIDs".into(), Value::Null);
    m.insert("HostConfig".into(), serde_json::to_value(&c.host_config)?);
    m.insert("GraphDriver".into(), graph_driver(engine, c));
    if size {
        let rw = engine.snapshotter()?.usage(&c.snapshot_key).unwrap_or(0);
        let image = c
            .image
            .parse()
            .ok()
            .and_then(|d| engine.meta.image(&d).ok().flatten())
            .map_or(0, |i| i.size);
        m.insert("SizeRw".into(), json!(rw));
        m.insert("SizeRootFs".into(), json!(rw + image));
    }
    m.insert(
        "Mounts".into(),
        crate::ops::volume::inspect_mounts(&c.mounts),
    );
    m.insert("Config".into(), serde_json::to_value(&c.config)?);
    m.insert("NetworkSettings".into(), network_settings(c));
    Ok(Value::Object(m))
}

/// docker's `GraphDriver`: the overlay directories (lower, upper, work, merged) or, for the
/// copy driver, none.
fn graph_driver(engine: &Engine, c: &Container) -> Value {
    let mut data = Map::new();
    if let Ok(mounts) = engine
        .snapshotter()
        .and_then(|s| Ok(s.mounts(&c.snapshot_key)?))
    {
        for m in mounts.iter().filter(|m| m.kind == "overlay") {
            for o in &m.options {
                if let Some((k, v)) = o.split_once('=') {
                    let key = match k {
                        "lowerdir" => "LowerDir",
                        "upperdir" => "UpperDir",
                        "workdir" => "WorkDir",
                        _ => continue,
                    };
                    data.insert(key.into(), json!(v));
                }
            }
        }
    }
    if !data.is_empty() {
        data.insert("MergedDir".into(), json!(c.rootfs));
    }
    json!({
        "Data": if data.is_empty() { Value::Null } else { Value::Object(data) },
        "Name": c.driver,
    })
}

fn network_settings(c: &Container) -> Value {
    let mode = c.host_config.network_mode.as_str();
    let mut networks = Map::new();
    if mode == "none" || mode == "host" {
        networks.insert(
            mode.to_owned(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "",
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": "", "DriverOpts": null
            }),
        );
    }
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "",
        "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": Value::Object(networks),
    })
}
