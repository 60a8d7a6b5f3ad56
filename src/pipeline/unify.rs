//! Unify (pipeline step 5): `customer360_profiles` and `customer360_events`.
