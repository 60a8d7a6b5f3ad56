//! The load step: extract every source ([`extract`]: CSV, Parquet,
//! JSON / NDJSON, REST, event-SDK exports) and land and stage its rows
//! ([`stage`]: raw rows kept as read, typed staging rows, rejects with their
//! reason; rows read = staged + rejected). `load --restage` re-applies a
//! changed mapping to the rows already landed (`stage::restage`).

pub mod extract;
pub mod stage;
