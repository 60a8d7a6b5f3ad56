//! Unify as SQL: `customer360_profiles` and `customer360_events` from the
//! clean tables and `customer360_id_map`.
