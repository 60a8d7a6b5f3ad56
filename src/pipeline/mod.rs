//! Pure data work: extract, stage (and later standardise, resolve, unify,
//! analyse). No UI imports here.

pub mod extract;
pub mod progress;
pub mod schema;
pub mod stage;
pub mod timeparse;

/// The six steps of the pipeline, in order, and whether this build has them.
pub const STEPS: &[(&str, bool)] = &[
    ("extract", true),
    ("stage", true),
    ("standardise", false),
    ("resolve", false),
    ("unify", false),
    ("analyse", false),
];
