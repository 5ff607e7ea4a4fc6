-- Device-initiated mode: agents behind NAT call the desktop's hub. An agent in this mode is
-- an `agent` row with mode 'hub'; these tables hold its enrolment and what it should run.
-- Deployment outcomes go to the `deployment` table like pushed ones (pending -> active /
-- installed / failed with the reason).

-- One enrolment per agent. Only the token's sha256 is kept: the enrolment file is the one
-- place the token exists. The agent's identity key is pinned (agent.public_key) on its
-- first call, so the file cannot be reused on another device.
CREATE TABLE hub_enrolment (
    agent         VARCHAR PRIMARY KEY,
    token_sha256  VARCHAR NOT NULL,
    hub_url       VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_at    TIMESTAMPTZ,             -- first call: the identity key was pinned then
    revoked_at    TIMESTAMPTZ              -- set: the hub refuses this agent
);

-- Desired state per (agent, model): the deployment the agent should carry out next poll.
-- 'rollback' becomes 'deploy' of the version the agent reports once it has rolled back, so
-- the row always converges on what the device should serve.
CREATE TABLE hub_desired (
    agent            VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    version          INTEGER NOT NULL,     -- 0 for a rollback not yet carried out
    action           VARCHAR NOT NULL,     -- 'deploy' or 'rollback'
    deployment       BIGINT NOT NULL,      -- deployment.id that records the outcome
    bundle           VARCHAR,              -- sha256 of the bundle object (deploy only)
    allow_downgrade  BOOLEAN NOT NULL DEFAULT false,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, model)
);
