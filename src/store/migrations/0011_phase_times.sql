-- Each step run's phases as they ran: a JSON list of
-- {"name", "seconds", "cpu_seconds"}. The next run of the step estimates
-- its overall progress and time left from them.
ALTER TABLE pipeline_runs ADD COLUMN phases TEXT;
