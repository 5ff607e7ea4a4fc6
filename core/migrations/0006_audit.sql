-- The audit trail: one append-only, hash-chained log of every change that decides what a
-- device serves. `position` is the chain order (1, 2, 3…); `hash` is sha256 of the previous
-- entry's hash and the canonical JSON of this entry (core.audit.chain), so an edited,
-- removed or reordered row breaks every hash after it. Entries an agent made carry its
-- signed body and signature, verbatim, so the chain proves what the agent itself said.
CREATE TABLE audit_event (
    position     BIGINT PRIMARY KEY,
    recorded_at  VARCHAR NOT NULL,         -- desktop clock when recorded, ISO 8601 UTC (µs)
    kind         VARCHAR NOT NULL,         -- register, alias, bundle_build, deploy, rollback,
                                           -- approve, key_rotation, retrain, agent_event
    actor        VARCHAR NOT NULL,         -- who: the desktop user, or 'agent'
    agent        VARCHAR,
    model        VARCHAR,
    version      INTEGER,
    sha256       VARCHAR,                  -- bundle / ONNX object the event concerns
    detail       VARCHAR NOT NULL,         -- canonical JSON: evidence (parity, status, …)
    agent_seq    BIGINT,                   -- agent events: the agent's own sequence
    agent_ts     DOUBLE,                   -- agent events: the agent's clock, unix seconds
    agent_boot   VARCHAR,                  -- agent events: the agent's boot id
    agent_body   VARCHAR,                  -- agent events: the signed body, verbatim
    agent_sig    VARCHAR,                  -- agent events: its signature (base64)
    agent_key    VARCHAR,                  -- agent events: the pinned key that verified it
    prev_hash    VARCHAR NOT NULL,
    hash         VARCHAR NOT NULL
);

-- Agent events that failed verification (signed by another key, malformed): kept aside,
-- never chained, counted by `outpost audit log`.
CREATE TABLE audit_rejected (
    agent        VARCHAR NOT NULL,
    seq          BIGINT NOT NULL,          -- the outbox sequence it came with
    body         VARCHAR,
    signature    VARCHAR,
    reason       VARCHAR NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
