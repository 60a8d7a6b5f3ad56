//! Exports of the unified tables for BI tools (CSV, Parquet).
