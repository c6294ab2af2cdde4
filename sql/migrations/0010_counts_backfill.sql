-- migrate: repeat
-- Counts the rows that were there before 0007-0009 installed their triggers, a batch per
-- transaction (service/migrate.py runs a `repeat` file's one statement, each time in a
-- transaction of its own, until it returns false), so no lock is held for the whole backfill
-- and the service keeps writing meanwhile.
-- conduit.backfill_width (keys per batch) is for tests; 5,000 keys are a few milliseconds.
SELECT count_backfill_step(coalesce(nullif(current_setting('conduit.backfill_width', true), ''), '5000')::bigint);
