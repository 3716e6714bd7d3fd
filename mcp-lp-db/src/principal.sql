-- Signed principals for mcp-lp-db: run once per database as an administrator that is not a
-- capability's role. Idempotent.
--
-- Each connection of a capability registers a secret key once, right after it connects and
-- before any handler runs SQL on it; the table holding keys is out of every capability's reach.
-- Each call then sets `mcp_lp.principal` and `mcp_lp.principal_mac` (HMAC-SHA256 of the
-- principal under that key), and `mcp_lp.principal()` returns the principal only when the MAC
-- verifies. SQL a handler sends can change both settings, but cannot compute another
-- principal's MAC, so a policy written with `(SELECT mcp_lp.principal())` sees no principal
-- rather than a forged one.
CREATE SCHEMA IF NOT EXISTS mcp_lp;
REVOKE CREATE ON SCHEMA mcp_lp FROM PUBLIC;
GRANT USAGE ON SCHEMA mcp_lp TO PUBLIC;

CREATE TABLE IF NOT EXISTS mcp_lp.connection_keys (
    pid           integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    inner_key     bytea NOT NULL,
    outer_key     bytea NOT NULL
);
REVOKE ALL ON TABLE mcp_lp.connection_keys FROM PUBLIC;

-- Register the calling backend's key. A backend registers once; a row left by an earlier
-- backend with the same process id is replaced.
CREATE OR REPLACE FUNCTION mcp_lp.register_connection_key(key bytea) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    started timestamptz := (SELECT a.backend_start FROM pg_stat_activity a
                            WHERE a.pid = pg_backend_pid());
    inner_key bytea := key;
    outer_key bytea := key;
BEGIN
    IF key IS NULL OR length(key) <> 64 THEN
        RAISE EXCEPTION 'mcp_lp: a connection key is 64 bytes' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM mcp_lp.connection_keys k
               WHERE k.pid = pg_backend_pid() AND k.backend_start = started) THEN
        RAISE EXCEPTION 'mcp_lp: this connection has registered its key already'
            USING ERRCODE = '42501';
    END IF;
    FOR i IN 0..63 LOOP
        inner_key := set_byte(inner_key, i, get_byte(key, i) # 54);
        outer_key := set_byte(outer_key, i, get_byte(key, i) # 92);
    END LOOP;
    DELETE FROM mcp_lp.connection_keys WHERE pid = pg_backend_pid();
    INSERT INTO mcp_lp.connection_keys VALUES (pg_backend_pid(), started, inner_key, outer_key);
END
$$;
REVOKE ALL ON FUNCTION mcp_lp.register_connection_key(bytea) FROM PUBLIC;

-- The calling principal when its MAC verifies under this backend's key, else NULL.
CREATE OR REPLACE FUNCTION mcp_lp.principal() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.principal
    FROM (SELECT current_setting('mcp_lp.principal', true) AS principal,
                 current_setting('mcp_lp.principal_mac', true) AS mac) AS s
    JOIN mcp_lp.connection_keys k ON k.pid = pg_backend_pid()
    WHERE k.backend_start = (SELECT a.backend_start FROM pg_stat_activity a
                             WHERE a.pid = pg_backend_pid())
      AND s.mac = encode(sha256(k.outer_key
                                || sha256(k.inner_key || convert_to(s.principal, 'UTF8'))), 'hex')
$$;
GRANT EXECUTE ON FUNCTION mcp_lp.principal() TO PUBLIC;
