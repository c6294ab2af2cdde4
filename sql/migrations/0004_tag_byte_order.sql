-- Tag names compare and sort byte by byte on every server, whatever the database's collation:
-- tagList and GET /api/tags come out in the same order everywhere (capitals first), and two
-- names are the same tag exactly when their bytes are. The article_cards view (0001), which the
-- service no longer reads since 0003, depended on the column; it goes.
DROP VIEW article_cards;
ALTER TABLE tags ALTER COLUMN name TYPE text COLLATE "C";
