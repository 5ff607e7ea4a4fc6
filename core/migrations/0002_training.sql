-- Training runs (a search is a parent run whose trials are child runs).
CREATE TABLE run (
    id              VARCHAR PRIMARY KEY,
    kind            VARCHAR NOT NULL,      -- train | search | trial
    parent          VARCHAR,               -- the search run a trial belongs to
    dataset         VARCHAR NOT NULL,
    dataset_version VARCHAR NOT NULL,
    target          VARCHAR NOT NULL,
    features        JSON NOT NULL,         -- [{"name", "kind": "numeric"|"string"}]
    task            VARCHAR NOT NULL,      -- classification | regression
    algo            VARCHAR NOT NULL,
    params          JSON NOT NULL,
    seed            BIGINT NOT NULL,
    split           JSON NOT NULL,         -- {"test_size", "stratified", "train_rows", "holdout_rows"}
    metrics         JSON NOT NULL,
    importance      JSON,                  -- {feature: mean score drop}
    labels          JSON,                  -- class labels in predict_proba order
    notes           JSON NOT NULL,         -- what was left out or warned about
    search          JSON,                  -- search runs: {"kind", "trials", "metric", "cv", "best"}
    model_object    VARCHAR,               -- sha256 of the pickled pipeline (not for trials)
    duration_s      DOUBLE NOT NULL,
    packages        JSON NOT NULL,
    status          VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE model (
    name        VARCHAR PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE model_version (
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    run         VARCHAR,                   -- null for imported ONNX files
    source      JSON NOT NULL,             -- {"kind": "run"|"import", ...}
    onnx_object VARCHAR NOT NULL,          -- sha256 of the ONNX file
    onnx_bytes  BIGINT NOT NULL,
    inputs      JSON NOT NULL,             -- [{"name", "datatype", "shape"}] (OIP datatypes)
    outputs     JSON NOT NULL,
    opset       JSON NOT NULL,             -- {domain: version}
    task        VARCHAR,
    labels      JSON,
    parity      JSON NOT NULL,
    flagged     BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model, version)
);

-- Alias history: one row per assignment; the open row (released_at NULL) is current.
CREATE TABLE model_alias (
    model       VARCHAR NOT NULL,
    alias       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    assigned_at TIMESTAMPTZ NOT NULL,
    released_at TIMESTAMPTZ,
    forced      BOOLEAN NOT NULL
);
