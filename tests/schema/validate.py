#!/usr/bin/env python3
"""Validate OCI image JSON against the OCI image-spec JSON schemas, offline.

Usage:
    validate.py [--kind KIND] FILE...      validate JSON files
    validate.py --layout DIR [FILE...]     validate an OCI image layout: oci-layout, index.json
                                           and every blob, reached through the descriptors

The schemas are the ones Debian's golang-github-opencontainers-image-spec-dev ships
(found with `dpkg -L`, or given with $OCI_SCHEMA_DIR). Their `$ref`s are resolved from that
directory; nothing is fetched from the network.

The schema is chosen by media type: the descriptor's mediaType for blobs of a layout, the
document's own mediaType field for files, and failing that its shape (imageLayoutVersion ->
oci-layout, manifests -> index, layers -> manifest, rootfs -> config); --kind overrides.

Besides the schema, the checks that image-spec's own Go validator adds are applied: digests
of registered algorithms must have the right encoding, and config Env entries must be
KEY=VALUE. In a layout, every blob must hash to its name and match its descriptors' sizes.

One known exception: this schema version demands at least one layer in a manifest, but the
spec allows none and docker writes zero-layer images, so an empty `layers` is accepted.

Exit status: 0 when everything is valid, 1 naming each file and violation otherwise, 2 on a
usage error or when the schemas cannot be found.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import warnings

PACKAGE = "golang-github-opencontainers-image-spec-dev"
DEFAULT_SCHEMA_DIR = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema"

SCHEMA_FILES = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}

MEDIA_TYPES = {
    "application/vnd.oci.image.manifest.v1+json": "manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "manifest",
    "application/vnd.oci.image.index.v1+json": "index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "index",
    "application/vnd.oci.image.config.v1+json": "config",
    "application/vnd.docker.container.image.v1+json": "config",
    "application/vnd.oci.image.layout.header.v1+json": "layout",
}

# Digest algorithms the image spec registers, with the encoding each must have.
DIGEST_ENCODINGS = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}

RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


class Problems:
    """Collects violations as 'FILE: where: what' lines."""

    def __init__(self):
        self.lines = []

    def add(self, name, where, what):
        self.lines.append("%s: %s: %s" % (name, where or "/", what))


def find_schema_dir():
    env = os.environ.get("OCI_SCHEMA_DIR")
    if env:
        return env
    try:
        out = subprocess.run(
            ["dpkg", "-L", PACKAGE], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            if line.endswith("/schema/" + SCHEMA_FILES["manifest"]):
                return os.path.dirname(line)
    except (OSError, subprocess.CalledProcessError):
        pass
    if os.path.isfile(os.path.join(DEFAULT_SCHEMA_DIR, SCHEMA_FILES["manifest"])):
        return DEFAULT_SCHEMA_DIR
    return None


def load_schemas(schema_dir):
    schemas = {}
    for name in os.listdir(schema_dir):
        if name.endswith(".json"):
            with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
                schemas[name] = json.load(f)
    missing = [f for f in SCHEMA_FILES.values() if f not in schemas]
    if missing:
        raise SystemExit("validate.py: %s lacks %s" % (schema_dir, ", ".join(missing)))
    return schemas


def is_rfc3339(value):
    if not isinstance(value, str):
        return True
    m = RFC3339.match(value)
    if not m:
        return False
    month, day, hour, minute, second = (int(m.group(i)) for i in range(2, 7))
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61


class Validators:
    """One Draft 4 validator per kind; `$ref`s resolve by file name inside the schema dir.

    The schemas nest `id`s (https://opencontainers.org/schema/image/manifest/annotations and
    so on), so a `$ref` such as "defs-descriptor.json" may resolve under several base URIs;
    image-spec's Go loader maps all of them to its embedded files, and so does this.
    """

    def __init__(self, schemas):
        import jsonschema

        self.schemas = schemas
        checker = jsonschema.FormatChecker()
        checker.checks("date-time")(is_rfc3339)
        self.validators = {}
        try:
            import referencing
            import referencing.exceptions
            import referencing.jsonschema
        except ImportError:
            referencing = None

        if referencing is not None:
            draft4 = referencing.jsonschema.DRAFT4

            def retrieve(uri):
                name = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
                if name in schemas:
                    return draft4.create_resource(schemas[name])
                raise referencing.exceptions.NoSuchResource(ref=uri)

            registry = referencing.Registry(retrieve=retrieve)
            for kind, name in SCHEMA_FILES.items():
                self.validators[kind] = jsonschema.Draft4Validator(
                    schemas[name], registry=registry, format_checker=checker
                )
        else:
            # jsonschema < 4.18 (Debian bookworm ships 4.10): RefResolver with a handler.
            def handler(uri):
                name = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
                if name in schemas:
                    return schemas[name]
                raise jsonschema.exceptions.RefResolutionError(
                    "schema %s is not shipped by %s (no network lookups)" % (uri, PACKAGE)
                )

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                for kind, name in SCHEMA_FILES.items():
                    schema = schemas[name]
                    resolver = jsonschema.RefResolver(
                        base_uri=schema.get("id", ""),
                        referrer=schema,
                        handlers={"https": handler, "http": handler},
                    )
                    self.validators[kind] = jsonschema.Draft4Validator(
                        schema, resolver=resolver, format_checker=checker
                    )

    def check(self, kind, doc, name, problems):
        for err in sorted(self.validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path)):
            path = list(err.absolute_path)
            if (
                kind == "manifest"
                and err.validator == "minItems"
                and path == ["layers"]
                and doc.get("layers") == []
            ):
                continue  # the one allowed exception: zero-layer manifests
            where = "/" + "/".join(str(p) for p in path)
            problems.add(name, where, "%s (%s schema, %s)" % (err.message, kind, err.validator))
        extra_checks(kind, doc, name, problems)


def check_digest(value, where, name, problems):
    if not isinstance(value, str) or ":" not in value:
        return  # the schema reports the malformed ones
    alg, enc = value.split(":", 1)
    pattern = DIGEST_ENCODINGS.get(alg)
    if pattern is not None and not pattern.match(enc):
        problems.add(name, where, "digest %r: %s encoding must match %s" % (value, alg, pattern.pattern))


def extra_checks(kind, doc, name, problems):
    """What image-spec's Go validator checks beyond the JSON schema."""
    if not isinstance(doc, dict):
        return
    if kind == "manifest":
        if isinstance(doc.get("config"), dict):
            check_digest(doc["config"].get("digest"), "/config/digest", name, problems)
        for i, layer in enumerate(doc.get("layers") or []):
            if isinstance(layer, dict):
                check_digest(layer.get("digest"), "/layers/%d/digest" % i, name, problems)
    elif kind == "index":
        for i, m in enumerate(doc.get("manifests") or []):
            if isinstance(m, dict):
                check_digest(m.get("digest"), "/manifests/%d/digest" % i, name, problems)
    elif kind == "descriptor":
        check_digest(doc.get("digest"), "/digest", name, problems)
    elif kind == "config":
        config = doc.get("config")
        if isinstance(config, dict):
            for i, env in enumerate(config.get("Env") or []):
                if isinstance(env, str) and not re.match(r"^[^=]+=.*$", env):
                    problems.add(name, "/config/Env/%d" % i, "unexpected env: %r (want KEY=VALUE)" % env)
        rootfs = doc.get("rootfs")
        if isinstance(rootfs, dict):
            for i, d in enumerate(rootfs.get("diff_ids") or []):
                if not isinstance(d, str) or ":" not in d:
                    problems.add(name, "/rootfs/diff_ids/%d" % i, "diff_id %r is not a digest" % (d,))
                else:
                    check_digest(d, "/rootfs/diff_ids/%d" % i, name, problems)


def guess_kind(doc):
    if not isinstance(doc, dict):
        return None
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type in MEDIA_TYPES:
        return MEDIA_TYPES[media_type]
    if "imageLayoutVersion" in doc:
        return "layout"
    if "manifests" in doc:
        return "index"
    if "layers" in doc or ("config" in doc and "schemaVersion" in doc):
        return "manifest"
    if "rootfs" in doc or "architecture" in doc:
        return "config"
    return None


def load_json(path, name, problems):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8")), True
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problems.add(name, "", "not readable JSON: %s" % e)
        return None, False


def validate_file(validators, path, kind, problems):
    doc, ok = load_json(path, path, problems)
    if not ok:
        return 0
    kind = kind or guess_kind(doc)
    if kind is None:
        problems.add(path, "", "cannot tell which OCI schema applies (no known mediaType); use --kind")
        return 0
    validators.check(kind, doc, path, problems)
    return 1


def hash_file(path, alg):
    h = hashlib.new(alg)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def validate_layout(validators, layout, problems):
    """Validate oci-layout, index.json and everything reachable from it, then every blob."""
    count = 0
    rel = lambda p: os.path.relpath(p, layout)  # noqa: E731
    oci_layout = os.path.join(layout, "oci-layout")
    index_path = os.path.join(layout, "index.json")
    for path, kind in ((oci_layout, "layout"), (index_path, "index")):
        if not os.path.isfile(path):
            problems.add(rel(path), "", "missing from the image layout")
            continue
        doc, ok = load_json(path, rel(path), problems)
        if ok:
            validators.check(kind, doc, rel(path), problems)
            count += 1

    # Every blob must hash to its name.
    blobs = {}
    blobs_dir = os.path.join(layout, "blobs")
    if os.path.isdir(blobs_dir):
        for alg in sorted(os.listdir(blobs_dir)):
            alg_dir = os.path.join(blobs_dir, alg)
            if not os.path.isdir(alg_dir):
                problems.add(rel(alg_dir), "", "not a directory of blobs")
                continue
            for enc in sorted(os.listdir(alg_dir)):
                path = os.path.join(alg_dir, enc)
                digest = "%s:%s" % (alg, enc)
                blobs[digest] = path
                if alg in DIGEST_ENCODINGS:
                    if not DIGEST_ENCODINGS[alg].match(enc):
                        problems.add(rel(path), "", "blob name is not a valid %s digest" % alg)
                    elif hash_file(path, alg) != enc:
                        problems.add(rel(path), "", "content does not hash to its name")

    # Walk the descriptors from index.json, validating each document by its mediaType.
    seen = set()
    stack = []
    if os.path.isfile(index_path):
        doc, ok = load_json(index_path, rel(index_path), problems)
        if ok and isinstance(doc, dict):
            for i, d in enumerate(doc.get("manifests") or []):
                stack.append((d, "index.json", "/manifests/%d" % i))
    while stack:
        desc, origin, where = stack.pop()
        if not isinstance(desc, dict):
            continue
        digest, media_type, size = desc.get("digest"), desc.get("mediaType"), desc.get("size")
        path = blobs.get(digest)
        if path is None:
            problems.add(origin, where, "descriptor points at blob %s, which is not in blobs/" % digest)
            continue
        if isinstance(size, int) and os.path.getsize(path) != size:
            problems.add(origin, where, "descriptor size %d, but blob %s has %d bytes" % (size, digest, os.path.getsize(path)))
        if digest in seen:
            continue
        seen.add(digest)
        kind = MEDIA_TYPES.get(media_type)
        if kind is None:
            continue  # a layer or some other opaque blob: existence, size and digest checked
        doc, ok = load_json(path, rel(path), problems)
        if not ok:
            continue
        validators.check(kind, doc, rel(path), problems)
        count += 1
        if not isinstance(doc, dict):
            continue
        if kind == "index":
            for i, d in enumerate(doc.get("manifests") or []):
                stack.append((d, rel(path), "/manifests/%d" % i))
        elif kind == "manifest":
            stack.append((doc.get("config"), rel(path), "/config"))
            for i, d in enumerate(doc.get("layers") or []):
                stack.append((d, rel(path), "/layers/%d" % i))

    # Blobs nobody points at: validate the ones that are recognisable OCI documents.
    for digest, path in sorted(blobs.items()):
        if digest in seen:
            continue
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        kind = guess_kind(doc)
        if kind is not None:
            validators.check(kind, doc, rel(path), problems)
            count += 1
    return count


def main(argv):
    parser = argparse.ArgumentParser(
        description="Validate OCI image JSON against the image-spec schemas (offline)."
    )
    parser.add_argument("--layout", metavar="DIR", help="validate an OCI image layout directory")
    parser.add_argument("--kind", choices=sorted(SCHEMA_FILES), help="schema for FILEs")
    parser.add_argument("files", nargs="*", metavar="FILE")
    args = parser.parse_args(argv)
    if not args.layout and not args.files:
        parser.error("give FILEs to validate, or --layout DIR")

    try:
        import jsonschema  # noqa: F401
    except ImportError:
        print("validate.py: python3-jsonschema is not installed (apt-get install python3-jsonschema)", file=sys.stderr)
        return 2
    schema_dir = find_schema_dir()
    if schema_dir is None:
        print("validate.py: OCI schemas not found; apt-get install %s or set OCI_SCHEMA_DIR" % PACKAGE, file=sys.stderr)
        return 2
    validators = Validators(load_schemas(schema_dir))

    problems = Problems()
    count = 0
    if args.layout:
        if not os.path.isdir(args.layout):
            print("validate.py: %s is not a directory" % args.layout, file=sys.stderr)
            return 2
        count += validate_layout(validators, args.layout, problems)
    for path in args.files:
        count += validate_file(validators, path, args.kind, problems)

    if problems.lines:
        for line in problems.lines:
            print(line, file=sys.stderr)
        print("validate.py: %d violation(s)" % len(problems.lines), file=sys.stderr)
        return 1
    print("ok: %d document(s) valid against %s" % (count, schema_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
