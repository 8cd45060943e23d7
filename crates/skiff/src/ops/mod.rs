//! Operations: one file per thing skiff does. The CLI (and later the Engine API) parse their
//! input and call exactly one of these; no operation prints anything.

pub mod build;
pub mod changes;
pub mod commit;
pub mod container;
pub mod container_diff;
pub mod cp;
pub mod df;
pub mod engine;
pub mod error;
pub mod export;
pub mod gc;
pub mod history;
pub mod import;
pub mod inspect;
pub mod layer_ingest;
pub mod list;
pub mod load;
pub mod mount;
pub mod new_image;
pub mod prune;
pub mod registry;
pub mod resolve;
pub mod rmi;
pub mod save;
pub mod tag;
pub mod unpack;
pub mod volume;
