//! `skiff image inspect`: docker's JSON shape for an image.

use anyhow::Result;
use serde_json::{json, Map, Value};
use skiff_image::spec::ImageConfig;

use super::engine::Engine;
use super::resolve::{self, familiar};

/// docker's `container.Config` (API 1.41) as `inspect` prints an image's `Config` and
/// `ContainerConfig`: every field in Go's order, those docker omits when empty left out, the
/// values as the image config has them (`Image`, `Hostname` of a built image included).
pub fn docker_container_config(raw: Option<&Value>) -> Value {
    let empty = Map::new();
    let raw = raw.and_then(Value::as_object).unwrap_or(&empty);
    let get = |k: &str| raw.get(k).cloned();
    let string = |k: &str| get(k).filter(Value::is_string).unwrap_or(json!(""));
    let boolean = |k: &str| get(k).filter(Value::is_boolean).unwrap_or(json!(false));
    let nullable = |k: &str| get(k).unwrap_or(Value::Null);
    let present = |v: &Option<Value>| match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    };
    let mut m = Map::new();
    m.insert("Hostname".into(), string("Hostname"));
    m.insert("Domainname".into(), string("Domainname"));
    m.insert("User".into(), string("User"));
    m.insert("AttachStdin".into(), boolean("AttachStdin"));
    m.insert("AttachStdout".into(), boolean("AttachStdout"));
    m.insert("AttachStderr".into(), boolean("AttachStderr"));
    if present(&get("ExposedPorts")) {
        m.insert("ExposedPorts".into(), nullable("ExposedPorts"));
    }
    m.insert("Tty".into(), boolean("Tty"));
    m.insert("OpenStdin".into(), boolean("OpenStdin"));
    m.insert("StdinOnce".into(), boolean("StdinOnce"));
    m.insert("Env".into(), nullable("Env"));
    m.insert("Cmd".into(), nullable("Cmd"));
    // A pointer in Go: present whenever the config has one, even empty.
    if let Some(h) = get("Healthcheck").filter(|h| !h.is_null()) {
        m.insert("Healthcheck".into(), h);
    }
    for k in ["ArgsEscaped"] {
        if present(&get(k)) {
            m.insert(k.into(), nullable(k));
        }
    }
    m.insert("Image".into(), string("Image"));
    m.insert("Volumes".into(), nullable("Volumes"));
    m.insert("WorkingDir".into(), string("WorkingDir"));
    m.insert("Entrypoint".into(), nullable("Entrypoint"));
    for k in ["NetworkDisabled", "MacAddress"] {
        if present(&get(k)) {
            m.insert(k.into(), nullable(k));
        }
    }
    m.insert("OnBuild".into(), nullable("OnBuild"));
    m.insert("Labels".into(), nullable("Labels"));
    if present(&get("StopSignal")) {
        m.insert("StopSignal".into(), nullable("StopSignal"));
    }
    if let Some(t) = get("StopTimeout").filter(|t| !t.is_null()) {
        m.insert("StopTimeout".into(), t);
    }
    if present(&get("Shell")) {
        m.insert("Shell".into(), nullable("Shell"));
    }
    Value::Object(m)
}

/// The keys of the inspect document whose values are Go maps rather than structs (for
/// typed `-f` templates).
pub const INSPECT_MAP_FIELDS: &[&str] = &["Labels", "ExposedPorts", "Volumes", "Data"];

/// The inspect document of the image `input` names.
pub fn inspect_image(engine: &Engine, input: &str) -> Result<Value> {
    let image = resolve::require(engine, input)?.image;
    let raw_bytes = engine.content.read_blob(&image.id)?;
    let raw: Value = serde_json::from_slice(&raw_bytes)?;
    let config: ImageConfig = serde_json::from_slice(&raw_bytes)?;
    let mut refs = engine.meta.tags_of(&image.id)?;
    refs.sort();
    let tags: Vec<String> = refs.iter().map(|t| familiar(t)).collect();
    let mut refs = engine.meta.repo_digests_of(&image.id)?;
    refs.sort();
    let digests: Vec<String> = refs.iter().map(|t| familiar(t)).collect();
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
        "Container".into(),
        raw.get("container")
            .filter(|c| c.is_string())
            .cloned()
            .unwrap_or(json!("")),
    );
    m.insert(
        "ContainerConfig".into(),
        docker_container_config(raw.get("container_config")),
    );
    m.insert(
        "DockerVersion".into(),
        json!(config.docker_version.clone().unwrap_or_default()),
    );
    m.insert(
        "Author".into(),
        json!(config.author.clone().unwrap_or_default()),
    );
    m.insert(
        "Config".into(),
        match raw.get("config") {
            Some(c) if !c.is_null() => docker_container_config(Some(c)),
            _ => Value::Null,
        },
    );
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
