//! Docker image references: the grammar, docker's normalisation and its familiar forms.
//!
//! This follows `github.com/distribution/reference` (the package docker itself uses), written
//! here as a small hand parser instead of a regular expression. The grammar:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] remote-name
//! domain           := host [':' port-number]
//! host             := domain-name | '[' IPv6address ']'
//! domain-name      := domain-component ['.' domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! remote-name      := path-component ['/' path-component]*
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! digest           := algorithm ":" /[0-9a-fA-F]{32,}/   (then validated: only sha256)
//! ```
//!
//! Normalisation ([`Reference::parse_normalized`]) turns what a user types into a full name:
//! `busybox` is `docker.io/library/busybox`, `user/app` is `docker.io/user/app`,
//! `index.docker.io/busybox` is `docker.io/library/busybox`. The first path component is a
//! registry only when it is `localhost`, contains a `.` or a `:`, or contains an uppercase letter
//! (repository paths are lowercase, so an uppercase first component can only be a host).
//!
//! Error messages are docker's own words, because users and scripts compare them.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{ErrorKind, HasKind};

/// The registry that familiar names (`busybox`, `user/app`) live on.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The old name of Docker Hub ("the Docker Index"), canonicalised to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The Docker Hub namespace of official images: `busybox` is `library/busybox`.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag used when a reference has neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path (the part after the domain) docker accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag docker accepts.
pub const TAG_MAX_LEN: usize = 128;

/// `localhost` is always a registry when it is the first of several components.
const LOCALHOST: &str = "localhost";

/// Why a reference (or a tag, or a match pattern) was refused. The messages are docker's.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The string does not follow the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part of a user-typed reference has uppercase letters. Carries the
    /// repository path as docker prints it (`library/Busybox`).
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    RepositoryNotLowercase(String),
    /// The reference would be valid if lowercased (raised by the strict grammar check).
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// An empty string where a name was required.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The repository path is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A reference that had to be given in full normalised form was not.
    #[error("repository name must be canonical")]
    NameNotCanonical,
    /// A tag outside `[\w][\w.-]{0,127}`.
    #[error("invalid tag format")]
    InvalidTag,
    /// A 64-hex string, which docker reserves for image IDs.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexRepositoryName(String),
    /// The digest is malformed (bad characters for its algorithm).
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// The digest has the wrong number of hex characters for its algorithm.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// A well-formed digest with an algorithm other than sha256.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    /// A malformed `path.Match` pattern given to a reference filter.
    #[error("syntax error in pattern")]
    BadPattern,
}

impl HasKind for ReferenceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A parsed image reference: `[domain/]path[:tag][@digest]`.
///
/// References made by [`Reference::parse_normalized`] always have a domain; only the strict
/// [`Reference::parse`] (and one quirk of docker's, see `parse_normalized`) can leave it empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a user-typed reference the way docker does (`ParseNormalizedNamed`):
    /// `busybox` is `docker.io/library/busybox`, `localhost:5000/team/app:v1` keeps its registry,
    /// `app@sha256:…` and `name:tag@sha256:…` keep their digest. No default tag is added.
    ///
    /// Docker's quirks are kept: a 64-hex string is refused (it is an image ID), an uppercase
    /// first component is taken as a registry (`Foo/bar`), and a first component that has a
    /// `.` but is not a valid host name (`foo_bar.com/app`) ends up as part of the path with
    /// an empty domain.
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        if is_full_hex_id(s) {
            return Err(ReferenceError::HexRepositoryName(s.to_owned()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder,
        };
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::RepositoryNotLowercase(remote.to_owned()));
        }
        Reference::parse(&format!("{domain}/{remainder}"))
    }

    /// [`Reference::parse_normalized`], then `:latest` when the reference has neither a tag nor
    /// a digest (docker's `TagNameOnly`). A reference with both keeps both.
    pub fn parse_normalized_tagged(s: &str) -> Result<Reference, ReferenceError> {
        Ok(Reference::parse_normalized(s)?.tag_name_only())
    }

    /// Docker's `ParseDockerRef`: like [`Reference::parse_normalized_tagged`], but a reference
    /// with both a tag and a digest keeps only the digest (`busybox:1@sha256:…` is
    /// `docker.io/library/busybox@sha256:…`), which is what actually gets pulled.
    pub fn parse_docker_ref(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_normalized(s)?;
        if r.digest.is_some() {
            r.tag = None;
        }
        Ok(r.tag_name_only())
    }

    /// Docker's `ParseNamed`: the string must already be in full normalised form
    /// (`docker.io/library/busybox:latest`, not `busybox:latest`).
    pub fn parse_canonical(s: &str) -> Result<Reference, ReferenceError> {
        let r = Reference::parse_normalized(s)?;
        if r.to_string() != s {
            return Err(ReferenceError::NameNotCanonical);
        }
        Ok(r)
    }

    /// The strict grammar check without normalisation (distribution's `Parse`): `busybox` stays
    /// `busybox` with an empty domain, and any valid first component is taken as the domain
    /// when more components follow (`a/b` has domain `a`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let Some(parts) = match_reference(s) else {
            let lower = s.to_lowercase();
            if lower != s && match_reference(&lower).is_some() {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if parts.path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let digest = parts.digest.map(parse_digest).transpose()?;
        Ok(Reference {
            domain: parts.domain.to_owned(),
            path: parts.path.to_owned(),
            tag: parts.tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The name as docker shows it: `docker.io/` and an official image's `library/` dropped
    /// (`busybox`, `user/app`, `localhost:5000/team/app`). `library/a/b` keeps its `library/`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// True when the reference has neither a tag nor a digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The same repository with `tag` and without any digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same repository with `digest` and without any tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with neither tag nor digest.
    pub fn name_only(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    /// The reference as docker prints it: [`Reference::familiar_name`] plus `:tag` and
    /// `@digest` (`busybox:latest`, `busybox@sha256:…`).
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_tag_and_digest(&mut s);
        s
    }

    /// Adds `:latest` when there is neither a tag nor a digest (docker's `TagNameOnly`).
    fn tag_name_only(mut self) -> Reference {
        if self.is_name_only() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    fn push_tag_and_digest(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// The full normalised form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_tag_and_digest(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse_normalized(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

/// True if `s` is 64 lowercase hex characters: docker treats it as an image ID and refuses it
/// as a repository name ("invalid repository name (…), cannot specify 64-byte hexadecimal
/// strings").
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True if `tag` follows docker's tag grammar `[\w][\w.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    match b.split_first() {
        Some((first, rest)) => {
            b.len() <= TAG_MAX_LEN
                && is_word(*first)
                && rest.iter().all(|&c| is_word(c) || c == b'.' || c == b'-')
        }
        None => false,
    }
}

/// Docker's `REPOSITORY[:TAG]` filter (`docker images ub*`, `--filter reference=*/app:v1`):
/// the `path.Match` pattern is tried against [`Reference::familiar_string`], then against
/// [`Reference::familiar_name`]. `*` and `?` do not cross `/`. The pattern is not normalised,
/// so `docker.io/library/busybox` matches nothing (as in docker). A malformed pattern matches
/// nothing; see [`familiar_match_checked`] to report it.
pub fn familiar_match(pattern: &str, reference: &Reference) -> bool {
    familiar_match_checked(pattern, reference).unwrap_or(false)
}

/// [`familiar_match`], but a malformed pattern is an error ("syntax error in pattern"), as the
/// daemon answers for `docker images '[-x]'`.
pub fn familiar_match_checked(
    pattern: &str,
    reference: &Reference,
) -> Result<bool, ReferenceError> {
    let matched = path_match(pattern, &reference.familiar_string())?;
    if matched {
        return Ok(true);
    }
    Ok(path_match(pattern, &reference.familiar_name()).unwrap_or(false))
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/// Splits a user-typed reference into a registry and the rest (docker's `splitDockerDomain`),
/// adding `library/` to single-component Docker Hub names.
fn split_docker_domain(s: &str) -> (&str, String) {
    let Some((first, rest)) = s.split_once('/') else {
        // A single component is always a Docker Hub official image, even `localhost` or
        // `example.com:5000` (which is then a name with a tag).
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{s}"));
    };
    let (domain, remote) = if first == LOCALHOST {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, s)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote.to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The grammar

/// The pieces of a string that matched the reference grammar.
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Matches the whole reference grammar; `None` when `s` does not follow it.
fn match_reference(s: &str) -> Option<Parts<'_>> {
    // Neither the name nor the tag may contain '@', so the first '@' starts the digest.
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            if !is_digest_syntax(d) {
                return None;
            }
            (n, Some(d))
        }
        None => (s, None),
    };
    // A tag has no ':' or '/'; a ':' in the name belongs to a port and is followed by a '/'.
    // So the last ':' starts a tag exactly when no '/' follows it.
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if !name_and_tag[i + 1..].contains('/') => {
            let tag = &name_and_tag[i + 1..];
            if !is_valid_tag(tag) {
                return None;
            }
            (&name_and_tag[..i], Some(tag))
        }
        _ => (name_and_tag, None),
    };
    let (domain, path) = match_name(name)?;
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// Splits a name into domain and path. The first component is the domain when it can be one
/// and something follows it; otherwise the whole name must be a path.
fn match_name(name: &str) -> Option<(&str, &str)> {
    if let Some((first, rest)) = name.split_once('/') {
        if is_domain_and_port(first) && is_remote_name(rest) {
            return Some((first, rest));
        }
    }
    is_remote_name(name).then_some(("", name))
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_lower_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false; // empty, leading or trailing separator, or two separators in a row
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional `:port`.
fn is_domain_and_port(s: &str) -> bool {
    let port = if let Some(bracketed) = s.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return false;
        };
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None => return false,
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if !host.split('.').all(is_domain_component) {
            return false;
        }
        match port {
            Some(port) => port,
            None => return true,
        }
    };
    !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit())
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// The reference grammar's digest: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*` then
/// `:` and at least 32 hex characters (either case). Whether the algorithm and the length are
/// right is checked afterwards, by [`parse_digest`].
fn is_digest_syntax(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|component| {
        let b = component.as_bytes();
        matches!(b.first(), Some(c) if c.is_ascii_alphabetic())
            && b.iter().all(|c| c.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Validates a digest that already follows the grammar, with go-digest's errors: an unknown
/// algorithm is "unsupported" (or a "format" error when it has uppercase letters, which
/// go-digest's own grammar refuses), a sha256 with the wrong length is a "length" error,
/// uppercase hex is a "format" error.
fn parse_digest(s: &str) -> Result<Digest, ReferenceError> {
    let (algorithm, hex) = s
        .split_once(':')
        .ok_or(ReferenceError::DigestInvalidFormat)?;
    if algorithm != Digest::ALGORITHM {
        if algorithm.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::DigestInvalidFormat);
        }
        return Err(ReferenceError::DigestUnsupported);
    }
    if hex.len() != 64 {
        return Err(ReferenceError::DigestInvalidLength);
    }
    s.parse::<Digest>()
        .map_err(|_| ReferenceError::DigestInvalidFormat)
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

// ---------------------------------------------------------------------------------------------
// Go's path.Match, which docker's reference filter uses
//
// pattern:  { term }
// term:     '*' (any run of non-'/') | '?' (one non-'/') | '[' ['^'] { range } ']' | c | '\' c
// range:    c | '\' c | lo '-' hi
//
// The whole pattern is checked for syntax even when the match fails early, as Go does.

fn path_match(mut pattern: &str, mut name: &str) -> Result<bool, ReferenceError> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing '*' matches the rest of the name unless it has a '/'.
            return Ok(!name.contains('/'));
        }
        // Try the chunk at the current position. The last chunk must use up the name.
        if let Some(t) = match_chunk(chunk, name)? {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            // Let the star swallow one more character at a time, never a '/'.
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                if let Some(t) = match_chunk(chunk, &name[i + c.len_utf8()..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'chunks;
                }
            }
        }
        // No match: still report a malformed remainder of the pattern.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, "")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the following run up to the next star outside a class.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let b = trimmed.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // Skip the escaped byte; a trailing '\' is reported by match_chunk.
            b'\\' if i + 1 < b.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    // `i` stops at a '*' or the end, both character boundaries.
    (star, &trimmed[..i], &trimmed[i..])
}

/// Matches a star-free chunk at the start of `s`; `Some(rest)` on a match. Keeps checking the
/// chunk's syntax after a mismatch.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a str) -> Result<Option<&'a str>, ReferenceError> {
    let mut failed = false;
    while let Some(c) = chunk.chars().next() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = None;
                if !failed {
                    if let Some(sc) = s.chars().next() {
                        r = Some(sc);
                        s = &s[sc.len_utf8()..];
                    }
                }
                chunk = &chunk[1..];
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chunk.starts_with(']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let (h, rest) = class_char(rest)?;
                        hi = h;
                        chunk = rest;
                    }
                    if r.is_some_and(|r| lo <= r && r <= hi) {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if let Some(sc) = s.chars().next() {
                        if sc == '/' {
                            failed = true;
                        }
                        s = &s[sc.len_utf8()..];
                    }
                }
                chunk = &chunk[1..];
            }
            _ => {
                let literal = if c == '\\' {
                    chunk = &chunk[1..];
                    chunk.chars().next().ok_or(ReferenceError::BadPattern)?
                } else {
                    c
                };
                if !failed {
                    if let Some(sc) = s.chars().next() {
                        if sc != literal {
                            failed = true;
                        }
                        s = &s[sc.len_utf8()..];
                    }
                }
                chunk = &chunk[literal.len_utf8()..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// One (possibly escaped) character of a class, which must be followed by more pattern.
fn class_char(chunk: &str) -> Result<(char, &str), ReferenceError> {
    if chunk.is_empty() || chunk.starts_with(['-', ']']) {
        return Err(ReferenceError::BadPattern);
    }
    let chunk = chunk.strip_prefix('\\').unwrap_or(chunk);
    let c = chunk.chars().next().ok_or(ReferenceError::BadPattern)?;
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return Err(ReferenceError::BadPattern);
    }
    Ok((c, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FFF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const HEX: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

    fn norm(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    /// distribution/reference's TestReferenceParse (and some of ours), against the strict parser.
    #[test]
    #[rustfmt::skip]
    fn strict_parse_table() {
        use ReferenceError as E;
        let a_path = "a/".repeat(127) + "a";
        let ok_255 = format!("example.com/{}", "a".repeat(255));
        let t128 = "t".repeat(128);
        // (input, expected error, name, domain, tag, digest); empty strings mean "none".
        type Row = (String, Option<E>, String, String, String, String);
        let row = |i: &str, n: &str, d: &str, t: &str, g: &str| -> Row {
            (i.to_owned(), None, n.to_owned(), d.to_owned(), t.to_owned(), g.to_owned())
        };
        let err = |i: &str, e: E| -> Row {
            (i.to_owned(), Some(e), String::new(), String::new(), String::new(), String::new())
        };
        let rows: Vec<Row> = vec![
            row("test_com", "test_com", "", "", ""),
            row("test.com:tag", "test.com", "", "tag", ""),
            row("test.com:5000", "test.com", "", "5000", ""),
            row("test.com/repo:tag", "test.com/repo", "test.com", "tag", ""),
            row("test:5000/repo", "test:5000/repo", "test:5000", "", ""),
            row("test:5000/repo:tag", "test:5000/repo", "test:5000", "tag", ""),
            row(&format!("test:5000/repo@{FFF}"), "test:5000/repo", "test:5000", "", FFF),
            row(&format!("test:5000/repo:tag@{FFF}"), "test:5000/repo", "test:5000", "tag", FFF),
            err("", E::NameEmpty),
            err(":justtag", E::InvalidFormat),
            err(&format!("@{FFF}"), E::InvalidFormat),
            err("repo@sha256:ffffffffffffffffffffffffffffffffff", E::DigestInvalidLength),
            err(&format!("validname@invaliddigest:{}", "f".repeat(64)), E::DigestUnsupported),
            err(&format!("validname@sha512:{}", "f".repeat(128)), E::DigestUnsupported),
            err("Uppercase:tag", E::NameContainsUppercase),
            err("test:5000/Uppercase/lowercase:tag", E::NameContainsUppercase),
            row("lowercase:Uppercase", "lowercase", "", "Uppercase", ""),
            err(&format!("domain/{}:tag", "a".repeat(256)), E::NameTooLong),
            row(&format!("{a_path}:tag-puts-this-over-max"), &a_path, "a", "tag-puts-this-over-max", ""),
            err("aa/asdf$$^/aa", E::InvalidFormat),
            row("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "", ""),
            row("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "some-long-tag", ""),
            row("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app", "b.gcr.io", "test.example.com", ""),
            row("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", ""),
            row(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{FFF}"), "xn--7o8h.com/myimage", "xn--7o8h.com", "xn--7o8h.com", FFF),
            row("foo_bar.com:8080", "foo_bar.com", "", "8080", ""),
            row("foo/foo_bar.com:8080", "foo/foo_bar.com", "foo", "8080", ""),
            row("192.168.1.1", "192.168.1.1", "", "", ""),
            row("192.168.1.1:tag", "192.168.1.1", "", "tag", ""),
            row("192.168.1.1:5000", "192.168.1.1", "", "5000", ""),
            row("192.168.1.1/repo", "192.168.1.1/repo", "192.168.1.1", "", ""),
            row("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000", "", ""),
            row("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", ""),
            err("[2001:db8::1]", E::InvalidFormat),
            err("[2001:db8::1]:5000", E::InvalidFormat),
            err("[2001:db8::1]:tag", E::InvalidFormat),
            row("[2001:db8::1]/repo", "[2001:db8::1]/repo", "[2001:db8::1]", "", ""),
            row("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "[2001:db8:1:2:3:4:5:6]", "tag", ""),
            row("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", ""),
            row("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", ""),
            row(&format!("[2001:db8::1]:5000/repo@{FFF}"), "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", FFF),
            row(&format!("[2001:db8::1]:5000/repo:tag@{FFF}"), "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", FFF),
            row("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", "[2001:db8::]:5000", "", ""),
            row("[::1]:5000/repo", "[::1]:5000/repo", "[::1]:5000", "", ""),
            err("[fe80::1%eth0]:5000/repo", E::InvalidFormat),
            err("[fe80::1%@invalidzone]:5000/repo", E::InvalidFormat),
            row(&format!("{ok_255}:tag"), &ok_255, "example.com", "tag", ""),
            // Ours: digests go-digest refuses, separators, stray characters.
            err(&format!("repo@sha256:{}", "F".repeat(64)), E::DigestInvalidFormat),
            err(&format!("repo@SHA256:{}", "f".repeat(64)), E::DigestInvalidFormat),
            err(&format!("repo@sha256:{}", "f".repeat(31)), E::InvalidFormat),
            err(&format!("repo@sha256:{}", "g".repeat(64)), E::InvalidFormat),
            err(&format!("repo@{FFF}@{FFF}"), E::InvalidFormat),
            err("repo:", E::InvalidFormat),
            err("repo@", E::InvalidFormat),
            err("repo:a:b", E::InvalidFormat),
            err("repo:-tag", E::InvalidFormat),
            err(&format!("repo:{t128}t"), E::InvalidFormat),
            err("a/", E::InvalidFormat),
            err("/a", E::InvalidFormat),
            err("a//b", E::InvalidFormat),
            err("a b", E::InvalidFormat),
            err("example.com:/repo", E::InvalidFormat),
            err("example.com:50a/repo", E::InvalidFormat),
            err("[]/repo", E::InvalidFormat),
            err("[::1]x/repo", E::InvalidFormat),
            err("a___b", E::InvalidFormat),
            err("a-_b", E::InvalidFormat),
            err("\u{212A}ube", E::NameContainsUppercase), // the Kelvin sign lowercases to 'k'
            row("a__b/c---d/e.f_g", "a__b/c---d/e.f_g", "", "", ""),
            row(&format!("repo:{t128}"), "repo", "", &t128, ""),
        ];

        for (input, want_err, name, domain, tag, digest) in rows {
            let got = Reference::parse(&input);
            if let Some(want) = want_err {
                assert_eq!(got, Err(want), "input {input:?}");
                continue;
            }
            let r = got.unwrap_or_else(|e| panic!("{input:?} should parse, got {e}"));
            assert_eq!(r.to_string(), input);
            assert_eq!(r.name(), name, "name of {input:?}");
            assert_eq!(r.domain(), domain, "domain of {input:?}");
            assert_eq!(r.tag().unwrap_or(""), tag, "tag of {input:?}");
            let got_digest = r.digest().map(|d| d.to_string()).unwrap_or_default();
            assert_eq!(got_digest, digest, "digest of {input:?}");
        }
    }

    /// distribution/reference's TestValidateReferenceName and TestValidateRemoteName.
    #[test]
    fn normalized_valid_and_invalid_names() {
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "localhost/library/debian",
            "localhost/debian",
            "LOCALDOMAIN/library/debian",
            "LOCALDOMAIN/debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for name in valid {
            assert!(
                Reference::parse_normalized(name).is_ok(),
                "{name:?} should be valid"
            );
        }
        let long_namespace = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_"
            .repeat(4)
            + "/docker";
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            HEX,
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            &long_namespace,
            "",
        ];
        for name in invalid {
            assert!(
                Reference::parse_normalized(name).is_err(),
                "{name:?} should be invalid"
            );
        }
    }

    /// distribution/reference's TestParseRepositoryInfo.
    #[test]
    #[rustfmt::skip]
    fn repository_info() {
        // (path, familiar name, full name, another spelling of it, domain)
        let cases = [
            ("fooo", "localhost/fooo", "localhost/fooo", "", "localhost"),
            ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "", "localhost"),
            ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "", "LOCALDOMAIN"),
            ("fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "", "LOCALDOMAIN"),
            ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
            ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
            ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
            ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
            ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "", "127.0.0.1:8000"),
            ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
            ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
            ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
            ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", "", "example.com:8000"),
            ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "", "example.com:8000"),
            ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base", "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
            ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
            ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
            ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for (path, familiar, full, other, domain) in cases {
            for input in [familiar, full, other] {
                if input.is_empty() {
                    continue;
                }
                let r = norm(input);
                assert_eq!(r.familiar_name(), familiar, "familiar name of {input:?}");
                assert_eq!(r.to_string(), full, "full name of {input:?}");
                assert_eq!(r.name(), full, "name of {input:?}");
                assert_eq!(r.domain(), domain, "domain of {input:?}");
                assert_eq!(r.path(), path, "path of {input:?}");
                assert!(r.is_name_only());
            }
        }
    }

    /// distribution/reference's TestNormalizedSplitHostname, plus docker's corner cases.
    #[test]
    #[rustfmt::skip]
    fn normalized_domain_and_path() {
        let cases = [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            // A single component is never a registry.
            ("localhost", "docker.io", "library/localhost"),
            ("example.com", "docker.io", "library/example.com"),
            ("localhost:5000/team/app", "localhost:5000", "team/app"),
            ("index.docker.io/user/app", "docker.io", "user/app"),
            // A dotted first component that is no valid host name falls back into the path.
            ("foo_bar.com/app", "", "foo_bar.com/app"),
        ];
        for (input, domain, path) in cases {
            let r = norm(input);
            assert_eq!((r.domain(), r.path()), (domain, path), "{input:?}");
        }
        let r = norm("localhost:5000");
        assert_eq!((r.path(), r.tag()), ("library/localhost", Some("5000")));
        assert_eq!(norm("foo_bar.com/app").familiar_name(), "foo_bar.com/app");
    }

    #[test]
    fn tags_and_digests() {
        let short = format!("busybox:latest@{FFF}");
        let r = norm(&short);
        assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
        assert_eq!(r.familiar_string(), short);
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest().map(|d| d.to_string()).as_deref(), Some(FFF));

        let r = norm(&format!("app@{FFF}"));
        assert_eq!(r.familiar_string(), format!("app@{FFF}"));
        assert_eq!(r.tag(), None);

        let r = norm("localhost:5000/team/app:v1");
        assert_eq!(r.name(), "localhost:5000/team/app");
        assert_eq!(r.familiar_name(), "localhost:5000/team/app");
        assert_eq!(r.familiar_string(), "localhost:5000/team/app:v1");
        assert_eq!(r.tag(), Some("v1"));

        assert_eq!(norm("user/app").familiar_string(), "user/app");
        assert_eq!(norm("user/app:1.0").to_string(), "docker.io/user/app:1.0");
        assert_eq!("busybox".parse::<Reference>(), Ok(norm("busybox")));
    }

    #[test]
    fn with_tag_and_with_digest() {
        let d: Digest = FFF.parse().unwrap();
        let r = norm("busybox:1.36");
        let digested = r.with_digest(d.clone());
        assert_eq!(
            digested.to_string(),
            format!("docker.io/library/busybox@{FFF}")
        );
        assert_eq!(digested.tag(), None);
        let tagged = digested.with_tag("musl").unwrap();
        assert_eq!(tagged.to_string(), "docker.io/library/busybox:musl");
        assert_eq!(tagged.digest(), None);
        assert_eq!(r.with_tag("-foo"), Err(ReferenceError::InvalidTag));
        assert_eq!(r.with_tag(""), Err(ReferenceError::InvalidTag));
        assert_eq!(r.with_tag("a/b"), Err(ReferenceError::InvalidTag));
        assert_eq!(
            r.with_tag(&"t".repeat(129)),
            Err(ReferenceError::InvalidTag)
        );
        assert!(r.with_tag(&"t".repeat(128)).is_ok());
        assert!(r.with_tag("_Under.score-1").is_ok());
        assert_eq!(r.name_only().to_string(), "docker.io/library/busybox");
        assert!(Reference::parse_normalized("-foo").is_err());
    }

    /// distribution/reference's TestParseDockerRef, plus TagNameOnly.
    #[test]
    #[rustfmt::skip]
    fn default_tag() {
        let dig = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:latest", "docker.io/library/busybox:latest"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
            ("library/busybox:latest", "docker.io/library/busybox:latest"),
            ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
            ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse_docker_ref(input).unwrap().to_string(), want);
            assert_eq!(Reference::parse_normalized_tagged(input).unwrap().to_string(), want);
        }
        let digest_only = format!("busybox@{dig}");
        let want = format!("docker.io/library/busybox@{dig}");
        assert_eq!(Reference::parse_docker_ref(&digest_only).unwrap().to_string(), want);
        assert_eq!(Reference::parse_normalized_tagged(&digest_only).unwrap().to_string(), want);
        let both = format!("gcr.io/library/busybox:latest@{dig}");
        let want = format!("gcr.io/library/busybox@{dig}");
        assert_eq!(Reference::parse_docker_ref(&both).unwrap().to_string(), want);
        assert_eq!(Reference::parse_normalized_tagged(&both).unwrap().to_string(), both);
        assert_eq!(norm("busybox").tag(), None);
    }

    #[test]
    fn canonical_only() {
        assert!(Reference::parse_canonical("docker.io/library/busybox:latest").is_ok());
        assert_eq!(
            Reference::parse_canonical("busybox:latest"),
            Err(ReferenceError::NameNotCanonical)
        );
        assert_eq!(
            Reference::parse_canonical("index.docker.io/library/busybox"),
            Err(ReferenceError::NameNotCanonical)
        );
    }

    #[test]
    #[rustfmt::skip]
    fn docker_error_messages() {
        let msg = |s: &str| Reference::parse_normalized(s).unwrap_err().to_string();
        assert_eq!(msg("Busybox"), "invalid reference format: repository name (library/Busybox) must be lowercase");
        assert_eq!(msg("docker.io/User/app:Tag"), "invalid reference format: repository name (User/app) must be lowercase");
        assert_eq!(msg("user/App"), "invalid reference format: repository name (user/App) must be lowercase");
        assert_eq!(msg("Foo_bar.com/app"), "repository name must be lowercase");
        assert_eq!(msg("busy box"), "invalid reference format");
        assert_eq!(msg(""), "invalid reference format");
        assert_eq!(msg("busybox:"), "invalid reference format");
        assert_eq!(msg(HEX), format!("invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"));
        // The limit is on the path, and an official image's "library/" counts.
        assert_eq!(msg(&"a".repeat(248)), "repository name must not be more than 255 characters");
        assert!(Reference::parse_normalized(&"a".repeat(247)).is_ok());
        assert_eq!(msg("busybox@sha256:abc"), "invalid reference format");
        assert_eq!(msg(&format!("busybox@sha256:{}", "a".repeat(40))), "invalid checksum digest length");
        assert_eq!(msg(&format!("busybox@sha384:{}", "a".repeat(96))), "unsupported digest algorithm");
        assert_eq!(msg(&format!("busybox:1@sha256:{}", "A".repeat(64))), "invalid checksum digest format");
        assert_eq!(Reference::parse("").unwrap_err().to_string(), "repository name must have at least one component");
        assert_eq!(norm("busybox").with_tag("+").unwrap_err().to_string(), "invalid tag format");
        assert_eq!(ReferenceError::NameNotCanonical.to_string(), "repository name must be canonical");
        assert_eq!(ReferenceError::BadPattern.kind(), ErrorKind::InvalidArgument);
        // Only the bare 64-hex string is an ID; with a tag or a registry it is a name.
        assert!(Reference::parse_normalized(&format!("{HEX}:tag")).is_ok());
        assert!(Reference::parse_normalized(&HEX[..63]).is_ok());
    }

    #[test]
    fn full_hex_ids() {
        assert!(is_full_hex_id(HEX));
        assert!(!is_full_hex_id(&HEX[..63]));
        assert!(!is_full_hex_id(&HEX.to_uppercase()));
        assert!(!is_full_hex_id(&format!("sha256:{HEX}")));
        assert!(!is_full_hex_id(&format!("{HEX}0")));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "busybox",
            "user/app:1",
            "localhost:5000/a/b@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "Foo/bar:x",
            "foo_bar.com/app",
            "[::1]:5000/repo:tag",
            "docker.io/library/a/b",
        ] {
            let r = norm(s);
            assert_eq!(norm(&r.to_string()), r, "{s:?}");
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
            assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        }
    }

    /// distribution/reference's TestMatch and TestMatchError, plus the filters users type.
    #[test]
    #[rustfmt::skip]
    fn familiar_matching() {
        let busybox_digest = format!("busybox@{FFF}");
        let cases = [
            ("foo", "foo/**/ba[rz]", false),
            ("foo/any/bat", "foo/**/ba[rz]", false),
            ("foo/a/bar", "foo/**/ba[rz]", true),
            ("foo/b/baz", "foo/**/ba[rz]", true),
            ("foo/c/baz:tag", "foo/**/ba[rz]", true),
            ("foo/c/baz:tag", "foo/*/baz:tag", true),
            ("foo/c/baz:tag", "foo/c/baz:tag", true),
            ("example.com/foo/c/baz:tag", "*/foo/c/baz", true),
            ("example.com/foo/c/baz:tag", "example.com/foo/c/baz", true),
            ("ubuntu:22.04", "ub*", true),
            ("ubuntu:22.04", "ubuntu", true),
            ("ubuntu:22.04", "ubuntu:22.04", true),
            ("ubuntu:22.04", "ubuntu:*", true),
            ("ubuntu:22.04", "ubuntu:2?.04", true),
            ("ubuntu:22.04", "ubuntu:20.04", false),
            ("ubuntu:22.04", "*", true),
            ("ubuntu:22.04", "docker.io/library/ubuntu", false),
            ("ubuntu:22.04", "library/ubuntu", false),
            ("user/app:v1", "*/app", true),
            ("user/app:v1", "*/app:v*", true),
            ("user/app:v1", "*", false),
            ("user/app:v1", "*/*", true),
            ("user/app:v1", "app", false),
            ("localhost:5000/team/app:v1", "localhost:5000/*/app", true),
            ("localhost:5000/team/app:v1", "localhost:5000/*", false),
            (&busybox_digest, "busybox", true),
            (&busybox_digest, "busybox@sha256:*", true),
        ];
        for (reference, pattern, want) in cases {
            let r = norm(reference);
            assert_eq!(familiar_match(pattern, &r), want, "{pattern:?} against {reference:?}");
            assert_eq!(familiar_match_checked(pattern, &r), Ok(want));
        }
        let foo = norm("foo");
        assert_eq!(familiar_match_checked("[-x]", &foo), Err(ReferenceError::BadPattern));
        assert!(!familiar_match("[-x]", &foo));
        assert_eq!(familiar_match_checked("bar[", &foo), Err(ReferenceError::BadPattern));
    }

    /// The test vectors of Go's path.Match.
    #[test]
    #[rustfmt::skip]
    fn go_path_match() {
        let bad = Err(ReferenceError::BadPattern);
        let cases: &[(&str, &str, Result<bool, ReferenceError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a\u{263A}b", Ok(true)),
            ("a[^a]b", "a\u{263A}b", Ok(true)),
            ("a???b", "a\u{263A}b", Ok(false)),
            ("a[^a][^a][^a]b", "a\u{263A}b", Ok(false)),
            ("[a-\u{3B6}]*", "\u{3B1}", Ok(true)),
            ("*[a-\u{3B6}]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", bad.clone()),
            ("[-]", "-", bad.clone()),
            ("[x-]", "x", bad.clone()),
            ("[x-]", "-", bad.clone()),
            ("[x-]", "z", bad.clone()),
            ("[-x]", "x", bad.clone()),
            ("[-x]", "-", bad.clone()),
            ("[-x]", "a", bad.clone()),
            ("\\", "a", bad.clone()),
            ("[a-b-c]", "a", bad.clone()),
            ("[", "a", bad.clone()),
            ("[^", "a", bad.clone()),
            ("[^bc", "a", bad.clone()),
            ("a[", "a", bad.clone()),
            ("a[", "ab", bad.clone()),
            ("a[", "x", bad.clone()),
            ("a/b[", "x", bad.clone()),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(&path_match(pattern, name), want, "{pattern:?} against {name:?}");
        }
    }
}
