-- The records example's database: its table, its row-level security policy and one login role
-- per capability. scripts/postgres.sh runs this as the cluster's superuser, in database
-- `records`, with the psql variables `reader_password` and `writer_password`, right after
-- mcp-lp-db's src/principal.sql (signed principals: `mcp_lp.principal()`). It can be run
-- again: every statement is idempotent.
--
-- Roles:
--   records_owner   owns the table; never logs in, so no capability can DROP or ALTER it
--   records_reader  the `records-read` capability: SELECT only
--   records_writer  the `records-write` capability: SELECT, and INSERT of title and body only
\set ON_ERROR_STOP on

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'records_owner') THEN
        CREATE ROLE records_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'records_reader') THEN
        CREATE ROLE records_reader LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'records_writer') THEN
        CREATE ROLE records_writer LOGIN;
    END IF;
END
$$;

-- Login roles hold no role attributes; the server refuses to start if they do.
ALTER ROLE records_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'reader_password';
ALTER ROLE records_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'writer_password';

REVOKE ALL ON DATABASE records FROM PUBLIC;
GRANT CONNECT ON DATABASE records TO records_reader, records_writer;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE TABLE IF NOT EXISTS public.records (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The principal the call ran for, as mcp-lp-db signed it. Writers cannot supply it: their
    -- INSERT grant covers title and body only; a forged principal makes it NULL.
    owner      text NOT NULL DEFAULT mcp_lp.principal() CHECK (owner <> ''),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body       text NOT NULL CHECK (length(body) <= 10000),
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.records OWNER TO records_owner;
ALTER TABLE public.records ALTER COLUMN owner SET DEFAULT mcp_lp.principal();

-- Each principal sees and inserts only its own rows. `mcp_lp.principal()` is NULL when no
-- principal is set, or when SQL a handler sent set one without its signature, so such a session
-- sees nothing rather than another principal's rows.
ALTER TABLE public.records ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS records_by_principal ON public.records;
CREATE POLICY records_by_principal ON public.records
    USING (owner = (SELECT mcp_lp.principal()))
    WITH CHECK (owner = (SELECT mcp_lp.principal()));

-- Each connection registers its signing key once (see mcp-lp-db's README).
GRANT EXECUTE ON FUNCTION mcp_lp.register_connection_key(bytea) TO records_reader, records_writer;

REVOKE ALL ON public.records FROM records_reader, records_writer;
GRANT SELECT ON public.records TO records_reader;
GRANT SELECT ON public.records TO records_writer;
GRANT INSERT (title, body) ON public.records TO records_writer;

-- A few rows to look at. The superuser inserting them is not subject to row-level security.
INSERT INTO public.records (owner, title, body)
SELECT owner, title, body
FROM (VALUES
    ('alice@example.com', 'Q3 plan', 'Ship the records example.'),
    ('alice@example.com', 'Vendor call', 'Ask about the renewal terms.'),
    ('bob@example.com', 'Salary review', 'Bob''s private notes.')
) AS seed(owner, title, body)
WHERE NOT EXISTS (SELECT FROM public.records);
