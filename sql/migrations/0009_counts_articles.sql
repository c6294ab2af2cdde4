-- articles joins the counts of 0006: the triggers that keep author_counts, and the one that
-- copies a changed created_at into article_tags and favorites (the API never changes it). No
-- column or index here: a SHARE ROW EXCLUSIVE lock for the moment of creating triggers.
CREATE TRIGGER articles_created_at_moved AFTER UPDATE OF created_at ON articles
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION articles_created_at_moved();
CREATE TRIGGER articles_count_insert AFTER INSERT ON articles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION articles_count();
CREATE TRIGGER articles_count_delete AFTER DELETE ON articles
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION articles_count();
CREATE TRIGGER articles_count_update AFTER UPDATE ON articles
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION articles_count();
CREATE TRIGGER articles_count_truncate AFTER TRUNCATE ON articles
    FOR EACH STATEMENT EXECUTE FUNCTION counts_truncate();
