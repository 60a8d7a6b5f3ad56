//! Customer360 Workbench: the library behind the `c360` binary.
//!
//! Pipeline code lives in [`pipeline`] and never imports the UI; the SQLite
//! store lives in [`store`]; the workspace (`c360.toml` + `rules/`) in
//! [`workspace`]; the demo set-up in [`demo`].

pub mod bench;
pub mod check;
pub mod console;
pub mod demo;
pub mod generate;
pub mod pipeline;
pub mod read;
pub mod report;
pub mod safe_text;
pub mod store;
pub mod tui;
pub mod warehouse;
pub mod workspace;
