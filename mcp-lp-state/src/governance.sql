-- mcp-lp-state's governance tables: the revocation list every replica follows, when each tool
-- was last used by whom, and calls waiting for approval with their single-use ledger. Same psql variables as audit.sql, applied after it:
--   state_owner   owns the schema, the tables and the trigger; never logs in
--   state_role    the role [state] logs in as
-- It can be run again: every statement is idempotent.
CREATE SCHEMA IF NOT EXISTS mcp_lp_governance AUTHORIZATION :"state_owner";
REVOKE ALL ON SCHEMA mcp_lp_governance FROM PUBLIC;

SET ROLE :"state_owner";
CREATE TABLE IF NOT EXISTS mcp_lp_governance.revocations (
    kind       text NOT NULL CHECK (kind IN ('principal', 'grant', 'tool', 'all')),
    name       text NOT NULL DEFAULT '',
    reason     text NOT NULL,
    revoked_by text NOT NULL,
    revoked_at timestamptz NOT NULL,
    PRIMARY KEY (kind, name),
    CHECK ((kind = 'all') = (name = ''))
);
CREATE TABLE IF NOT EXISTS mcp_lp_governance.last_used (
    tool      text NOT NULL,
    principal text NOT NULL,
    used_at   timestamptz NOT NULL,
    PRIMARY KEY (tool, principal)
);
-- Calls waiting for approval, and the single-use ledger: `call` is the pending call as the
-- checkpoint records it (arguments, approvers, denial); the columns beside it are what the one
-- statement that consumes an approval checks.
CREATE TABLE IF NOT EXISTS mcp_lp_governance.approvals (
    id                text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    principal         text NOT NULL,
    tool              text NOT NULL,
    arguments_sha256  text NOT NULL,
    definition_sha256 text NOT NULL,
    requested_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    used_at           timestamptz,
    call              jsonb NOT NULL
);
-- Every change of the list reaches every replica listening on `mcp_lp_revocations`, whoever
-- made it: the CLI, or an operator with psql.
CREATE OR REPLACE FUNCTION mcp_lp_governance.revocations_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mcp_lp_revocations', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS revocations_changed ON mcp_lp_governance.revocations;
CREATE TRIGGER revocations_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mcp_lp_governance.revocations
    FOR EACH STATEMENT EXECUTE FUNCTION mcp_lp_governance.revocations_changed();
REVOKE ALL ON mcp_lp_governance.revocations, mcp_lp_governance.last_used,
    mcp_lp_governance.approvals FROM PUBLIC;
RESET ROLE;

REVOKE ALL ON mcp_lp_governance.revocations, mcp_lp_governance.last_used,
    mcp_lp_governance.approvals FROM :"state_role";
GRANT USAGE ON SCHEMA mcp_lp_governance TO :"state_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON mcp_lp_governance.revocations TO :"state_role";
GRANT SELECT, INSERT, UPDATE ON mcp_lp_governance.last_used TO :"state_role";
GRANT SELECT, INSERT, UPDATE ON mcp_lp_governance.approvals TO :"state_role";
