-- RealWorld 2.0: bio and image are null until set, and an empty one is stored as null (the API
-- answers null for both). Existing empty values become null; the constraints keep it so.
ALTER TABLE users ALTER COLUMN bio DROP NOT NULL, ALTER COLUMN bio DROP DEFAULT;
UPDATE users SET bio = NULL WHERE bio = '';
UPDATE users SET image = NULL WHERE image = '';
ALTER TABLE users
    ADD CONSTRAINT users_bio_not_empty CHECK (bio <> ''),
    ADD CONSTRAINT users_image_not_empty CHECK (image <> '');
