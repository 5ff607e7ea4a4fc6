-- Closed loop: prediction ids and answers, ground-truth labels, captured samples.

-- What each agent answered, one row per (agent, seq) record: ids, answers (as text) and
-- times of every row of one flush, in lists. Unnested where accuracy joins labels.
CREATE TABLE telemetry_prediction (
    agent       VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE NOT NULL,
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    ids         VARCHAR[] NOT NULL,        -- AGENT:BOOT:SEQ prediction ids
    predicted   VARCHAR[] NOT NULL,        -- first output per row, as text
    times       DOUBLE[] NOT NULL          -- unix seconds of each row's request
);

-- Labels posted to an agent (POST /v1/models/{name}/feedback), carried with telemetry.
CREATE TABLE telemetry_feedback (
    agent       VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE NOT NULL,
    model       VARCHAR NOT NULL,
    ids         VARCHAR[] NOT NULL,
    labels      VARCHAR[] NOT NULL
);

-- Rows an agent captured under its capture policy.
CREATE TABLE telemetry_capture (
    agent       VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE NOT NULL,
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    id          VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,          -- 'random', 'confidence' or 'drift'
    inputs      VARCHAR NOT NULL,          -- JSON object: column -> value
    prediction  VARCHAR NOT NULL
);

-- Labels imported on the desktop (`outpost feedback import`): one current label per
-- (model, id); a later import replaces it. No key index: imports go by anti-join.
CREATE TABLE feedback (
    model       VARCHAR NOT NULL,
    id          VARCHAR NOT NULL,
    label       VARCHAR NOT NULL,          -- a class, or a number as text for regression
    ts          DOUBLE NOT NULL,           -- when the label was given (file's ts, else import)
    source      VARCHAR NOT NULL,          -- the file it came from
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
