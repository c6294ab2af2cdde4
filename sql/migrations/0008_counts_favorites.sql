-- favorites joins the counts of 0006 (as article_tags does in 0007): its articles' created_at
-- for the favoriter's page, and the triggers that keep favorite_counts and favoriter_counts.
ALTER TABLE favorites ADD COLUMN article_created_at timestamptz;
CREATE INDEX favorites_user_newest_idx ON favorites (user_id, article_created_at DESC, article_id DESC);
-- Only for rows that come without it (the condition costs no function call): the API's inserts
-- give it (the queries favorite and link_tags).
CREATE TRIGGER favorites_created_at BEFORE INSERT ON favorites
    FOR EACH ROW WHEN (NEW.article_created_at IS NULL) EXECUTE FUNCTION copy_article_created_at();
CREATE TRIGGER favorites_created_at_moved BEFORE UPDATE OF article_id ON favorites
    FOR EACH ROW EXECUTE FUNCTION copy_article_created_at();
CREATE TRIGGER favorites_count_insert AFTER INSERT ON favorites
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION favorites_count();
CREATE TRIGGER favorites_count_delete AFTER DELETE ON favorites
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION favorites_count();
CREATE TRIGGER favorites_count_update AFTER UPDATE ON favorites
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION favorites_count();
CREATE TRIGGER favorites_count_truncate AFTER TRUNCATE ON favorites
    FOR EACH STATEMENT EXECUTE FUNCTION counts_truncate();
