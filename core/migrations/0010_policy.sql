-- Retraining policy (core.policy): what makes a model retrain, stored with the model, and
-- every retrain a trigger asked for, from the trigger to the gate's verdict.
CREATE TABLE model_policy (
    model          VARCHAR PRIMARY KEY,
    spec           VARCHAR NOT NULL,       -- canonical JSON of core.policy.spec.Policy
    set_at         DOUBLE NOT NULL,        -- unix seconds
    last_fired_at  DOUBLE,                 -- when a trigger last queued a retrain
    captured_mark  BIGINT NOT NULL DEFAULT 0   -- labelled captured rows counted then
);

CREATE SEQUENCE policy_retrain_id START 1;
CREATE TABLE policy_retrain (
    id           BIGINT PRIMARY KEY DEFAULT nextval('policy_retrain_id'),
    model        VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,         -- 'pending', 'running', 'staged', 'rejected',
                                           -- 'failed', 'cancelled', 'skipped'
    source       VARCHAR NOT NULL,         -- what evaluated the policy: pull, import, hub, check
    triggers     VARCHAR NOT NULL,         -- JSON: the triggers that fired, with their values
    reason       VARCHAR,                  -- skipped / failed: why; otherwise the gate's reason
    dataset      VARCHAR,                  -- the dataset version trained on (name@version)
    run          VARCHAR,
    version      INTEGER,                  -- the model version the gate registered
    gate         VARCHAR,                  -- JSON: the gate's result
    created_at   DOUBLE NOT NULL,
    started_at   DOUBLE,
    finished_at  DOUBLE
);
