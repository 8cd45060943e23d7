//! `skiff image inspect`: docker's JSON shape for an image.

use anyhow::Result;
use serde_json::{json, Map, Value};
use skiff_image::spec::{ImageConfig, RunConfig};

use super::engine::Engine;
use super::list::read_config;
use super::resolve::{self, familiar};

/// docker's `Config` object: every field present, empty ones as docker prints them.
pub fn docker_run_config(rc: Option<&RunConfig>) -> Value {
    let empty = RunConfig::default();
    let rc = rc.unwrap_or(&empty);
    let mut m = Map::new();
    m.insert("Hostname".into(), json!(""));
    m.insert("Domainname".into(), json!(""));
    m.insert("User".into(), json!(rc.user.clone().unwrap_or_default()));
    m.insert("AttachStdin".into(), json!(false));
    m.insert("AttachStdout".into(), json!(false));
    m.insert("AttachStderr".into(), json!(false));
    if let Some(p) = &rc.exposed_ports {
        m.insert("ExposedPorts".into(), json!(p));
    }
    m.insert("Tty".into(), json!(false));
    m.insert("OpenStdin".into(), json!(false));
    m.insert("StdinOnce".into(), json!(false));
    m.insert("Env".into(), json!(rc.env));
    m.insert("Cmd".into(), json!(rc.cmd));
    if let Some(h) = &rc.healthcheck {
        m.insert("Healthcheck".into(), json!(h));
    }
    if let Some(a) = rc.args_escaped {
        m.insert("ArgsEscaped".into(), json!(a));
    }
    m.insert("Image".into(), json!(""));
    m.insert("Volumes".into(), json!(rc.volumes));
    m.insert(
        "WorkingDir".into(),
        json!(rc.working_dir.clone().unwrap_or_default()),
    );
    m.insert("Entrypoint".into(), json!(rc.entrypoint));
    m.insert("OnBuild".into(), json!(rc.on_build));
    m.insert("Labels".into(), json!(rc.labels));
    if let Some(s) = &rc.stop_signal {
        m.insert("StopSignal".into(), json!(s));
    }
    if let Some(s) = &rc.shell {
        m.insert("Shell".into(), json!(s));
    }
    Value::Object(m)
}

/// The inspect document of the image `input` names.
pub fn inspect_image(engine: &Engine, input: &str) -> Result<Value> {
    let image = resolve::require(engine, input)?.image;
    let config: ImageConfig = read_config(engine, &image.id)?;
    let tags: Vec<String> = engine
        .meta
        .tags_of(&image.id)?
        .iter()
        .map(|t| familiar(t))
        .collect();
    let digests: Vec<String> = engine
        .meta
        .repo_digests_of(&image.id)?
        .iter()
        .map(|t| familiar(t))
        .collect();
    let driver = engine.snapshotter().map(|s| s.driver()).unwrap_or("vfs");
    let mut m = Map::new();
    m.insert("Id".into(), json!(image.id.to_string()));
    m.insert("RepoTags".into(), json!(tags));
    m.insert("RepoDigests".into(), json!(digests));
    m.insert(
        "Parent".into(),
        json!(image.parent.map(|p| p.to_string()).unwrap_or_default()),
    );
    m.insert(
        "Comment".into(),
        json!(config.comment.clone().unwrap_or_default()),
    );
    m.insert(
        "Created".into(),
        json!(config
            .created
            .clone()
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())),
    );
    m.insert(
        "DockerVersion".into(),
        json!(config.docker_version.clone().unwrap_or_default()),
    );
    m.insert(
        "Author".into(),
        json!(config.author.clone().unwrap_or_default()),
    );
    m.insert("Config".into(), docker_run_config(config.config.as_ref()));
    m.insert("Architecture".into(), json!(config.architecture));
    if let Some(v) = &config.variant {
        m.insert("Variant".into(), json!(v));
    }
    m.insert("Os".into(), json!(config.os));
    if let Some(v) = &config.os_version {
        m.insert("OsVersion".into(), json!(v));
    }
    m.insert("Size".into(), json!(image.size));
    m.insert("VirtualSize".into(), json!(image.size));
    m.insert(
        "GraphDriver".into(),
        json!({ "Data": null, "Name": driver }),
    );
    m.insert(
        "RootFS".into(),
        json!({ "Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>() }),
    );
    m.insert(
        "Metadata".into(),
        json!({ "LastTagTime": last_tag_time(engine, &image.id)? }),
    );
    Ok(Value::Object(m))
}

fn last_tag_time(engine: &Engine, id: &skiff_image::Digest) -> Result<String> {
    let nanos = engine.meta.last_tag_time(id)?;
    Ok(match nanos {
        Some(n) => time::OffsetDateTime::from_unix_timestamp_nanos(n as i128)
            .map(skiff_image::spec::format_rfc3339)
            .unwrap_or_default(),
        None => "0001-01-01T00:00:00Z".to_owned(),
    })
}
