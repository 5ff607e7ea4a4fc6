-- Shadow: per window, how a bundle's challenger compared with the champion on a device.
CREATE TABLE telemetry_shadow (
    agent         VARCHAR NOT NULL,
    seq           BIGINT NOT NULL,
    window_start  DOUBLE NOT NULL,
    window_end    DOUBLE NOT NULL,
    model         VARCHAR NOT NULL,
    version       INTEGER NOT NULL,        -- the champion
    challenger    INTEGER NOT NULL,        -- the challenger's registry version
    count         BIGINT NOT NULL,         -- requests the challenger ran on
    rows          INTEGER NOT NULL,        -- rows compared
    agreed        BIGINT NOT NULL,
    dropped       BIGINT NOT NULL,         -- shadow queue full
    timeouts      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,         -- sum over `count` challenger calls
    counts        BIGINT[] NOT NULL,       -- latency histogram (edge_agent LATENCY_EDGES_US)
    divergence    VARCHAR NOT NULL         -- JSON {champion class: disagreeing rows}
);
