-- mcp-lp-state's audit table. Run as a superuser (or a role that may create schemas in the
-- database and SET ROLE to the owner), with three psql variables:
--   state_owner     owns the schema and the table; never logs in
--   state_role      the role [state] logs in as: INSERT and SELECT on the table, USAGE on its
--                   id sequence, nothing else
--   state_operator  the role of [state] operator_url (governance commands): the same here
-- psql -v state_owner=mcp_lp_state_owner -v state_role=mcp_lp_state \
--      -v state_operator=mcp_lp_state_operator -f audit.sql
-- It can be run again: every statement is idempotent.
--
-- Each row is one sealed event. `line` is the event exactly as sealed: `audit verify --db`
-- checks it, in `id` order. `instance`, `seq`, `hash` and `event` are copies of its fields for
-- queries and for the uniqueness that makes a retried batch insert nothing twice.
CREATE SCHEMA IF NOT EXISTS mcp_lp_audit AUTHORIZATION :"state_owner";
REVOKE ALL ON SCHEMA mcp_lp_audit FROM PUBLIC;

SET ROLE :"state_owner";
CREATE TABLE IF NOT EXISTS mcp_lp_audit.events (
    id          bigserial PRIMARY KEY,
    instance    text NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 0),
    hash        text NOT NULL,
    event       text NOT NULL,
    line        text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance, seq)
);
REVOKE ALL ON mcp_lp_audit.events FROM PUBLIC;
REVOKE ALL ON SEQUENCE mcp_lp_audit.events_id_seq FROM PUBLIC;
RESET ROLE;

-- The writers (the replicas' role, and the operator role the governance commands log in as):
-- no UPDATE, DELETE or TRUNCATE, so what they wrote stays as written.
REVOKE ALL ON mcp_lp_audit.events FROM :"state_role", :"state_operator";
REVOKE ALL ON SEQUENCE mcp_lp_audit.events_id_seq FROM :"state_role", :"state_operator";
GRANT USAGE ON SCHEMA mcp_lp_audit TO :"state_role", :"state_operator";
GRANT SELECT, INSERT ON mcp_lp_audit.events TO :"state_role", :"state_operator";
GRANT USAGE ON SEQUENCE mcp_lp_audit.events_id_seq TO :"state_role", :"state_operator";
