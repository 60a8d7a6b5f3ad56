-- 0006: the Customers screen filters profiles by lifecycle status.
CREATE INDEX IF NOT EXISTS profiles_by_lifecycle ON customer360_profiles(lifecycle_status);
