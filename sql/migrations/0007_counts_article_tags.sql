-- article_tags joins the counts of 0006: its articles' created_at (for the tag page's index in
-- list order) and the triggers that keep tag_counts. Each of 0007-0009 alters one table, so a
-- migration that waits for a table's lock holds no other lock a writer could be waiting for:
-- it cannot deadlock with the service.
ALTER TABLE article_tags ADD COLUMN article_created_at timestamptz;
CREATE INDEX article_tags_tag_newest_idx ON article_tags (tag_id, article_created_at DESC, article_id DESC);
-- Only for rows that come without it (the condition costs no function call): the API's inserts
-- give it (the queries favorite and link_tags).
CREATE TRIGGER article_tags_created_at BEFORE INSERT ON article_tags
    FOR EACH ROW WHEN (NEW.article_created_at IS NULL) EXECUTE FUNCTION copy_article_created_at();
CREATE TRIGGER article_tags_created_at_moved BEFORE UPDATE OF article_id ON article_tags
    FOR EACH ROW EXECUTE FUNCTION copy_article_created_at();
CREATE TRIGGER article_tags_count_insert AFTER INSERT ON article_tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION article_tags_count();
CREATE TRIGGER article_tags_count_delete AFTER DELETE ON article_tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION article_tags_count();
CREATE TRIGGER article_tags_count_update AFTER UPDATE ON article_tags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION article_tags_count();
CREATE TRIGGER article_tags_count_truncate AFTER TRUNCATE ON article_tags
    FOR EACH STATEMENT EXECUTE FUNCTION counts_truncate();
