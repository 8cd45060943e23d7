//! End-to-end tests of the `skiff` binary: each test runs skiff as a user would, in its own
//! temporary `--root`, against a base image built from Debian's busybox-static and against
//! third-party tools (skopeo, umoci, the OCI JSON schemas).
//!
//! Where to start reading:
//! - [`harness`]: `Skiff` (fresh root, run commands, clean up mounts), the busybox fixture,
//!   the `require!` checks that skip a test when root or a tool is missing.
//! - [`checks`]: root, overlayfs, tools, schemas: what a test needs, and why it skips.
//! - [`tree`]: file trees compared file by file (mode, owner, link target, content, xattrs).
//! - [`table`]: docker's table layout and human sizes; [`files`]: blob digests, tar listings,
//!   and the search for files a hostile layer must not have written.
//! - [`archive`]: hand-built layer tars and docker-archives (whiteouts, hostile entries).
//! - [`docker_parity`]: what the real docker printed for the image commands, asserted
//!   against skiff (and a real `docker save` fixture loaded with its IDs).
//! - Tests, by command: [`images`] (import, images, inspect, history, tag, rmi),
//!   [`save_load`], [`interop`] (skopeo and umoci images in and out), [`layers`] (whiteouts,
//!   metadata, path escapes, both storage drivers, info), [`concurrency`] (parallel
//!   processes, kill -9).
//!
//! Environment: `SKIFF_TEST_TMPDIR` (where test roots go; default cargo's target tmp dir),
//! `SKIFF_TEST_KEEP=1` (keep them), `SKIFF_TEST_TIMEOUT` (seconds per command, default 300).

/// Define `NAME::overlay` and `NAME::vfs`, each running `BODY(driver)` when the driver works
/// here (it needs root; overlay also needs overlayfs) and saying why it skips otherwise.
macro_rules! driver_tests {
    ($($name:ident => $body:ident;)*) => {$(
        mod $name {
            use crate::harness::{require, Driver};

            #[test]
            fn overlay() {
                require!(Driver::Overlay.usable());
                super::$body(Driver::Overlay);
            }

            #[test]
            fn vfs() {
                require!(Driver::Vfs.usable());
                super::$body(Driver::Vfs);
            }
        }
    )*};
}

mod archive;
mod checks;
mod files;
mod harness;
mod table;
mod tree;

mod build;
mod build_git;
mod build_history;
mod build_incremental;
mod build_more;
mod build_mounts;
mod build_parallel;
mod concurrency;
mod container_fs;
mod containers;
mod containers_more;
mod docker_parity;
mod images;
mod interop;
mod layers;
mod parity_more;
mod registry_client;
mod registry_server;
mod save_load;
mod volumes;
