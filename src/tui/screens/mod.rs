//! One component per screen: each owns its state, turns its keys into
//! actions through the key map's scope, changes its state in `update` and
//! draws it (see [`crate::tui::screen::Screen`]).

pub mod analytics;
pub mod audit;
pub mod customers;
pub mod pipeline;
pub mod rejects;
pub mod review;
pub mod rules;
