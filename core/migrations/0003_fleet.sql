-- Fleet: enrolled agents, deployments, signing-key rotations, telemetry and alerts.

CREATE TABLE agent (
    name          VARCHAR PRIMARY KEY,
    url           VARCHAR NOT NULL,
    token         VARCHAR NOT NULL,
    agent_id      VARCHAR NOT NULL,        -- the agent's uuid (agent.json)
    public_key    VARCHAR NOT NULL,        -- pinned identity key, base64 of the raw 32 bytes
    mode          VARCHAR NOT NULL,        -- 'push' (enrolled by URL) or 'local'
    key_index     INTEGER NOT NULL,        -- desktop key rotation whose key the agent trusts
    key_counter   INTEGER NOT NULL,        -- the agent's own count of rotations applied
    added_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ,
    last_status   JSON,                    -- the agent's last GET /v1/status answer
    last_error    VARCHAR                  -- why the last call failed, NULL when it worked
);

-- Each rotation moves agents from signing key n-1 to key n; agents that were offline get
-- every rotation they missed, in order, before their next bundle.
CREATE TABLE key_rotation (
    rotation    INTEGER PRIMARY KEY,
    old_key     VARCHAR NOT NULL,
    new_key     VARCHAR NOT NULL,
    record      BLOB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A bundle built for a model version: its object, the baseline it carries (drift reference)
-- and the key that signed it, so a rotation makes the next deploy rebuild it.
CREATE TABLE bundle (
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    object      VARCHAR NOT NULL,          -- sha256 of the .outpost file in the object store
    key_id      VARCHAR NOT NULL,          -- fingerprint of the signing key
    baseline    JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model, version)
);

CREATE SEQUENCE deployment_id START 1;
CREATE TABLE deployment (
    id           BIGINT PRIMARY KEY DEFAULT nextval('deployment_id'),
    agent        VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    action       VARCHAR NOT NULL,         -- 'deploy' or 'rollback'
    status       VARCHAR NOT NULL,         -- 'pending', 'active', 'installed', 'failed'
    error        VARCHAR,
    bundle       VARCHAR,                  -- sha256 of the bundle pushed
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);

-- Telemetry tables are keyed by (agent, seq) — the agent's gapless outbox sequence — so
-- the same records pulled twice or imported from a file twice are stored once. The key is
-- enforced by the ingest (anti-join inside the transaction that moves the cursor), not by
-- an index: an ART index over millions of rows would dominate bulk-ingest time.
CREATE TABLE telemetry_request (
    agent       VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE NOT NULL,           -- unix seconds, as the agent wrote it
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    status      SMALLINT NOT NULL,         -- HTTP status of the inference request
    latency_us  BIGINT NOT NULL,
    rows        INTEGER NOT NULL
);

CREATE TABLE telemetry_histogram (
    agent         VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    window_start  DOUBLE NOT NULL,
    window_end    DOUBLE NOT NULL,
    model         VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    feature       VARCHAR NOT NULL,        -- a baseline feature, or '__prediction__'
    counts        BIGINT[] NOT NULL,       -- counts in the baseline's bins
    nulls         BIGINT NOT NULL
);

-- The agent's outbox dropped records before they reached the desktop.
CREATE TABLE telemetry_evicted (
    agent       VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    ts          DOUBLE NOT NULL,
    count       BIGINT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL
);

-- Highest seq committed per agent; the pull asks for records after it and acks it.
CREATE TABLE telemetry_cursor (
    agent       VARCHAR PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE alert_id START 1;
CREATE TABLE alert (
    id          BIGINT PRIMARY KEY DEFAULT nextval('alert_id'),
    key         VARCHAR NOT NULL,          -- identity of the condition, e.g. drift/M/A/feature
    kind        VARCHAR NOT NULL,          -- 'drift' or 'health'
    model       VARCHAR,
    agent       VARCHAR,
    feature     VARCHAR,
    severity    VARCHAR NOT NULL,          -- 'warn' or 'alert'
    value       DOUBLE,
    threshold   DOUBLE,
    message     VARCHAR NOT NULL,
    raised_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at  TIMESTAMPTZ
);
