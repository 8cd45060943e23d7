//! Output formatting as the docker CLI does it.
//!
//! * [`template`]: Go `text/template` over [`serde_json::Value`], for
//!   `--format` and `inspect -f` (`{{.Config.Env}}`, `{{json .}}`,
//!   `{{range .RepoTags}}...{{end}}`), with docker's functions and error texts.
//! * [`table`]: list commands' `--format` (`table`, `table {{.A}}\t{{.B}}`,
//!   `json`, custom template) and docker's tab-aligned table layout.
//! * [`units`]: go-units sizes and durations (`1.24MB`, `2 weeks ago`).
//!
//! Rows and inspect data are JSON values; docker's Go structs are mirrored by
//! objects whose keys are the Go field names. Integers print as Go ints, a
//! missing key as `<no value>`, a nested null as `<nil>`.

mod gofmt;
mod gojson;
pub mod table;
pub mod template;
pub mod units;

pub use table::{render, render_typed, tabwrite, Format};
pub use template::{Template, TemplateError};
pub use units::{
    bytes_size, human_duration, human_size, human_size_with_precision, time_ago, unix_time_utc,
};
