//! The CLI's own helpers (the binary only; all work is in the library).

pub mod json;
