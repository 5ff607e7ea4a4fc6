-- Transport security (issue 13): each push agent's pinned TLS certificate key, and when a
-- call last failed pinning (the Fleet view's badge). Tokens leave the catalog: they live in
-- $OUTPOST_HOME/secrets.json (0600); core.vault moves any left in agent.token there on open.
ALTER TABLE agent ADD COLUMN tls_spki VARCHAR;        -- sha256 hex of the certificate's SPKI
ALTER TABLE agent ADD COLUMN pin_failed_at TIMESTAMPTZ;
