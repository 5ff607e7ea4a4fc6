-- Imported labels, cheaper to write (docs/feedback.md, "Benchmark"):
-- 1. feedback.id is stored with ZSTD. Ids are unique, so DuckDB's default for text
--    (dictionary + FSST) finds nothing to share and spent ~1.5 CPU s per 10 M ids on
--    trying (a third of an import); ZSTD writes them at almost the cost of no compression
--    (69 MB vs 58 MB for 10 M ids, a full scan ~0.08 s slower).
CREATE TABLE feedback_zstd (
    import      INTEGER NOT NULL,
    id          VARCHAR USING COMPRESSION zstd NOT NULL,
    label       VARCHAR NOT NULL,
    ts          DOUBLE NOT NULL
);
INSERT INTO feedback_zstd SELECT import, id, label, ts FROM feedback;
DROP TABLE feedback;
ALTER TABLE feedback_zstd RENAME TO feedback;

-- 2. What an import read, so the same file again is known without reading it twice:
--    `content` is the SHA-256 of the file's bytes with the model's task and classes at
--    the time; file_rows / file_labels its data rows and distinct ids (NULL: logged before).
ALTER TABLE feedback_import ADD COLUMN content VARCHAR;
ALTER TABLE feedback_import ADD COLUMN file_bytes BIGINT;
ALTER TABLE feedback_import ADD COLUMN file_rows BIGINT;
ALTER TABLE feedback_import ADD COLUMN file_labels BIGINT;
