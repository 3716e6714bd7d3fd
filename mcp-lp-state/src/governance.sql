-- mcp-lp-state's governance tables: the revocation list every replica follows, when each tool
-- was last used by whom, calls waiting for approval with their single-use ledger, and the
-- spent nonces of approved runs. Same psql variables as audit.sql, applied after it:
--   state_owner     owns the schema, the tables, the triggers and functions; never logs in
--   state_role      the role the replicas' [state] url logs in as: it reads revocations and
--                   cannot change them
--   state_operator  the role of `[state] operator_url`, which `revoke` and `unrevoke` log in as:
--                   the only one that changes revocations
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
-- Each entry's seal with the governance key (empty for an entry written with SQL by hand).
ALTER TABLE mcp_lp_governance.revocations ADD COLUMN IF NOT EXISTS key_id text NOT NULL DEFAULT '';
ALTER TABLE mcp_lp_governance.revocations ADD COLUMN IF NOT EXISTS mac text NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS mcp_lp_governance.last_used (
    tool      text NOT NULL,
    principal text NOT NULL,
    used_at   timestamptz NOT NULL,
    PRIMARY KEY (tool, principal)
);
-- Calls waiting for approval, and the single-use ledger: `call` is the sealed record as the
-- checkpoint keeps it (arguments, approvers, denial, use); the columns beside it are what the
-- lookups and the compare-and-swap on `revision` use.
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
ALTER TABLE mcp_lp_governance.approvals ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 0;
-- A retry without state finds its call by what it is.
CREATE INDEX IF NOT EXISTS approvals_by_call
    ON mcp_lp_governance.approvals (principal, tool, arguments_sha256, requested_at DESC);
-- Nonces spent by the rounds of approved runs and the approval page's sign-ins.
CREATE TABLE IF NOT EXISTS mcp_lp_governance.nonces (
    nonce      text PRIMARY KEY CHECK (nonce ~ '^[0-9a-f]{32,64}$'),
    expires_at timestamptz NOT NULL
);
-- A record only moves forward: each write is the next revision, what it is bound to never
-- changes, and a used approval stays used, whoever writes the row.
CREATE OR REPLACE FUNCTION mcp_lp_governance.approvals_forward_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.principal <> OLD.principal OR NEW.tool <> OLD.tool
       OR NEW.arguments_sha256 <> OLD.arguments_sha256
       OR NEW.definition_sha256 <> OLD.definition_sha256
       OR NEW.requested_at <> OLD.requested_at OR NEW.expires_at <> OLD.expires_at THEN
        RAISE EXCEPTION 'approval %: what it is bound to does not change', OLD.id;
    END IF;
    IF NEW.revision <> OLD.revision + 1
       OR (NEW.call->>'revision')::bigint IS DISTINCT FROM NEW.revision THEN
        RAISE EXCEPTION 'approval %: revision % does not follow %', OLD.id, NEW.revision, OLD.revision;
    END IF;
    IF (NEW.call->>'used_at')::timestamptz IS DISTINCT FROM NEW.used_at THEN
        RAISE EXCEPTION 'approval %: the record and its used_at column disagree', OLD.id;
    END IF;
    IF OLD.used_at IS NOT NULL AND NEW.used_at IS DISTINCT FROM OLD.used_at THEN
        RAISE EXCEPTION 'approval % was used at %; its use cannot be undone', OLD.id, OLD.used_at;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS approvals_forward_only ON mcp_lp_governance.approvals;
CREATE TRIGGER approvals_forward_only
    BEFORE UPDATE ON mcp_lp_governance.approvals
    FOR EACH ROW EXECUTE FUNCTION mcp_lp_governance.approvals_forward_only();
-- What expired is forgotten by the owner's function, never by the replicas' role, and only
-- what expired before now, whatever time the caller names.
CREATE OR REPLACE FUNCTION mcp_lp_governance.forget_expired(before timestamptz) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH calls AS (
        DELETE FROM mcp_lp_governance.approvals WHERE expires_at < least(before, now())
        RETURNING 1
    ), nonces AS (
        DELETE FROM mcp_lp_governance.nonces WHERE expires_at < least(before, now())
    )
    SELECT count(*) FROM calls
$$;
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
    mcp_lp_governance.approvals, mcp_lp_governance.nonces FROM PUBLIC;
REVOKE ALL ON FUNCTION mcp_lp_governance.forget_expired(timestamptz) FROM PUBLIC;
RESET ROLE;

REVOKE ALL ON mcp_lp_governance.revocations, mcp_lp_governance.last_used,
    mcp_lp_governance.approvals, mcp_lp_governance.nonces FROM :"state_role", :"state_operator";
GRANT USAGE ON SCHEMA mcp_lp_governance TO :"state_role", :"state_operator";
-- The replicas follow the list; only the operator role changes it.
GRANT SELECT ON mcp_lp_governance.revocations TO :"state_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON mcp_lp_governance.revocations TO :"state_operator";
GRANT SELECT, INSERT, UPDATE ON mcp_lp_governance.last_used TO :"state_role";
GRANT SELECT, INSERT, UPDATE ON mcp_lp_governance.approvals TO :"state_role", :"state_operator";
GRANT SELECT, INSERT ON mcp_lp_governance.nonces TO :"state_role", :"state_operator";
GRANT EXECUTE ON FUNCTION mcp_lp_governance.forget_expired(timestamptz) TO :"state_role";
