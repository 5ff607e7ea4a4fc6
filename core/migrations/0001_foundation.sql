-- Datasets and their content-addressed versions.
CREATE TABLE dataset (
    name        VARCHAR PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    description VARCHAR
);

CREATE TABLE dataset_version (
    dataset     VARCHAR NOT NULL REFERENCES dataset(name),
    version     VARCHAR NOT NULL,          -- content hash of the data (hex)
    object      VARCHAR NOT NULL,          -- sha256 of the Parquet object
    rows        BIGINT NOT NULL,
    columns     JSON NOT NULL,             -- [{"name", "type"}]
    source      JSON NOT NULL,             -- {"kind": "import"|"derive", ...}
    parent_dataset VARCHAR,
    parent_version VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, version)
);
