-- The backfill (0010) is done: its bookkeeping goes, and so does the tag index that
-- article_tags_tag_newest_idx (0007) replaces (same leading column, for GET /api/tags and the
-- cascade from a deleted tag).
DROP FUNCTION count_backfill_step(bigint);
DROP TABLE count_backfill;
DROP INDEX article_tags_tag_idx;
