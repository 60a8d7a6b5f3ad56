-- 0009: restaging (`c360 load --restage`). A batch keeps what re-reading its
-- raw rows needs (the CSV header row, or the Parquet column names) and the
-- fingerprint of the source settings it was staged with (mapping, format,
-- CSV options, time zone, date order), so a load can tell when they changed.
ALTER TABLE load_batches ADD COLUMN header TEXT;
ALTER TABLE load_batches ADD COLUMN staging_fingerprint TEXT;
ALTER TABLE load_batches ADD COLUMN restaged_at TEXT;
