-- Closed loop, second pass.
--
-- 1. Imported labels keep their model, file and time once per import, not on every row:
--    writing the per-row copies of three constant strings was a third of the cost of
--    storing a label (docs/feedback.md, "Benchmark").
CREATE TABLE feedback_import (
    import      INTEGER PRIMARY KEY,
    model       VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,          -- the file the labels came from
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO feedback_import
    SELECT row_number() OVER (ORDER BY min(imported_at), model, source), model, source,
           min(imported_at)
    FROM feedback GROUP BY model, source, imported_at;

CREATE TABLE feedback_label (
    import      INTEGER NOT NULL,          -- feedback_import.import: which model, file
    id          VARCHAR NOT NULL,
    label       VARCHAR NOT NULL,          -- a class, or a number as text for regression
    ts          DOUBLE NOT NULL            -- when the label was given (file's ts, else import)
);
INSERT INTO feedback_label
    SELECT i.import, f.id, f.label, f.ts
    FROM feedback f JOIN feedback_import i
      ON i.model = f.model AND i.source = f.source AND i.imported_at = f.imported_at;
DROP TABLE feedback;
ALTER TABLE feedback_label RENAME TO feedback;

-- 2. Capture policies the desktop set for hub-mode agents: served, signed, with every
--    poll answer (core.hub.desired). policy NULL: back to the bundle's.
CREATE TABLE hub_capture (
    agent       VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    policy      VARCHAR,                   -- CapturePolicy as JSON, or NULL
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, model)
);
