-- Staged rollouts (core.fleet.rollout): a model version to the fleet wave by wave. Written
-- before and after every step, so a desktop restart resumes or aborts where it stopped.
CREATE SEQUENCE rollout_id START 1;
CREATE TABLE rollout (
    id            BIGINT PRIMARY KEY DEFAULT nextval('rollout_id'),
    model         VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    waves         VARCHAR NOT NULL,        -- JSON list of cumulative fractions, last 1.0
    max_failures  INTEGER NOT NULL,        -- failures tolerated; one more halts
    soak_s        DOUBLE NOT NULL,
    offline_s     DOUBLE NOT NULL,         -- unreachable longer than this: failed
    status        VARCHAR NOT NULL,        -- 'running', 'done', 'halted', 'aborted'
    wave          INTEGER NOT NULL,        -- waves finished
    reason        VARCHAR,                 -- why it halted or was aborted
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rollout_agent (
    rollout     BIGINT NOT NULL,
    agent       VARCHAR NOT NULL,
    wave        INTEGER NOT NULL,          -- 0-based
    previous    INTEGER,                   -- version it served before its switch
    status      VARCHAR NOT NULL,          -- 'waiting', 'switched', 'healthy', 'failed',
                                           -- 'rolled_back'
    error       VARCHAR,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout, agent)
);
