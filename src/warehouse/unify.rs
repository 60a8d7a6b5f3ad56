//! Unify as SQL: `customer360_profiles` and `customer360_events` from the
//! clean tables and `customer360_id_map`.

use super::{Dialect, Script};
use crate::workspace::Workspace;
use anyhow::Result;

/// The unify scripts (50–51).
pub fn scripts(_d: Dialect, _ws: &Workspace) -> Result<Vec<Script>> {
    Ok(Vec::new())
}
