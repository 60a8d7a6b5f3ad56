//! The read side: queries that serve the screens and the exports, apart
//! from the pipeline steps that write the tables they read. The Audit
//! trail ([`audit`]), the Customers screen's search and detail
//! ([`customers`]), why records are one
//! customer ([`explain`]), segments and their counts
//! ([`segments`]), and exports of tables and segments to CSV / Parquet
//! ([`export`]).

pub mod analytics;
pub mod audit;
pub mod customers;
pub mod dictionary;
pub mod display;
pub mod explain;
pub mod export;
pub mod queue;
pub mod records;
pub mod segments;
