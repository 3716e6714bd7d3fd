#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for development and tests, in .cache/pg (gitignored), on a free
# localhost port. Login roles authenticate with passwords (scram-sha-256) over TCP; the socket
# admits only the cluster's own superuser, by peer authentication. No trust authentication.
#
#   scripts/postgres.sh start     create the cluster on first use, start it, create the databases
#                                 and roles, write the connection files (below)
#   scripts/postgres.sh stop      stop it (the data stays)
#   scripts/postgres.sh restart   stop, then start
#   scripts/postgres.sh status    say whether it runs
#   scripts/postgres.sh env       print the environment the tests read, as `export` lines
#   scripts/postgres.sh psql      open psql as the cluster superuser on database `records`
#   scripts/postgres.sh destroy   stop it and delete .cache/pg
#
# What `start` provides:
#   database `records`      the records example's schema, roles and row-level security policy
#                           (examples/records-server/schema.sql), with login roles
#                           records_reader and records_writer; and mcp-lp-state's tables
#                           (mcp-lp-state/src/audit.sql, governance.sql), owned by
#                           mcp_lp_state_owner, which never logs in, used by the login role
#                           mcp_lp_state (insert-only on the audit table)
#   database `mcp_lp_test`  for tests, which create their own roles in it as `mcp_lp_admin`
#   .cache/pg/secrets/*.url one connection URL per login role, password included, mode 0600:
#                           admin.url (mcp_lp_admin, a superuser), records-read.url,
#                           records-write.url, state.url; and audit-chain-key.password, the
#                           audit chain key of servers writing to the shared audit table
#   .cache/pg/tls/          a CA whose certificate the server presents (ca.pem) and an
#                           unrelated one (untrusted-ca.pem), for the TLS tests
#   .cache/pg/env           MCP_LP_PG_* variables naming the above
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user.
# The system's server is used (Debian package `postgresql`); as root it is installed if missing.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_ROOT="${MCP_LP_PG_ROOT:-$REPO_ROOT/.cache/pg}"
DATA="$PG_ROOT/data"
RUN="$PG_ROOT/run"
LOG="$PG_ROOT/log/postgres.log"
SECRETS="$PG_ROOT/secrets"
ENV_FILE="$PG_ROOT/env"
SCHEMA="$REPO_ROOT/examples/records-server/schema.sql"
PRINCIPAL_SQL="$REPO_ROOT/mcp-lp-db/src/principal.sql"
AUDIT_SQL="$REPO_ROOT/mcp-lp-state/src/audit.sql"
GOVERNANCE_SQL="$REPO_ROOT/mcp-lp-state/src/governance.sql"
HOST=127.0.0.1

if ((EUID == 0)); then
    OS_USER=postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    OS_USER="$(id -un)"
    as_pg() { "$@"; }
fi
# The bootstrap superuser has the OS user's name, so peer authentication on the socket admits
# exactly that user.
SUPERUSER="$OS_USER"

find_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        printf '%s\n' "$PG_BINDIR"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then
        printf '%s\n' "$dir"
    elif command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
    fi
}

ensure_installed() {
    BIN="$(find_bindir)"
    if [[ -n "$BIN" ]]; then
        return
    fi
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        say "installing PostgreSQL (Debian package postgresql)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        BIN="$(find_bindir)"
    fi
    if [[ -z "$BIN" ]]; then
        echo "error: PostgreSQL is not installed; install the server (Debian: apt-get install postgresql) or set PG_BINDIR" >&2
        exit 1
    fi
}

free_port() {
    "$PYTHON" - <<'PY'
import socket
for port in range(54320, 54420):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    raise SystemExit("error: no free port in 54320-54419")
PY
}

running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

port() {
    cat "$PG_ROOT/port"
}

init_cluster() {
    say "creating a PostgreSQL cluster in $DATA"
    mkdir -p "$PG_ROOT" "$DATA" "$RUN" "$(dirname "$LOG")" "$SECRETS"
    chmod 0700 "$DATA" "$SECRETS"
    if ((EUID == 0)); then
        chown postgres:postgres "$DATA" "$RUN" "$(dirname "$LOG")"
    fi
    as_pg "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 --no-sync >/dev/null
    local port
    port="$(free_port)"
    # Written through as_pg: the data directory belongs to the server's user.
    as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# mcp-lp: a throwaway cluster for development and tests.
listen_addresses = '$HOST'
port = $port
unix_socket_directories = '$RUN'
password_encryption = 'scram-sha-256'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_pg tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# TYPE  DATABASE  USER          ADDRESS        METHOD
local   all       $SUPERUSER    peer
host    all       all           $HOST/32   scram-sha-256
EOF
    printf '%s\n' "$port" >"$PG_ROOT/port"
}

# TLS for the `tls` feature's tests: a CA (tls/ca.pem), a server certificate it signed for
# 127.0.0.1 and localhost, and an unrelated CA (tls/untrusted-ca.pem) that must not be trusted.
# The server accepts TLS and plain connections alike; clients choose.
ensure_tls() {
    local dir="$PG_ROOT/tls"
    if [[ ! -f "$dir/ca.pem" || ! -f "$dir/untrusted-ca.pem" || ! -f "$dir/server.crt" ]]; then
        command -v openssl >/dev/null 2>&1 || {
            say "openssl not found: the cluster runs without TLS"
            return
        }
        mkdir -p "$dir"
        (
            cd "$dir"
            umask 077
            for ca in ca untrusted-ca; do
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
                    -subj "/CN=mcp-lp test $ca" -keyout "$ca.key" -out "$ca.pem" \
                    -addext "basicConstraints=critical,CA:TRUE" \
                    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
            done
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
            printf '%s\n' "subjectAltName=DNS:localhost,IP:$HOST" "basicConstraints=CA:FALSE" \
                "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile server.ext -out server.crt 2>/dev/null
            chmod 0644 ca.pem untrusted-ca.pem server.crt
        )
        rm -f "$DATA/server.key"
    fi
    [[ -f "$DATA/server.key" ]] && return
    # The server's key must belong to the server's user, readable by it alone.
    as_pg sh -c 'umask 077 && cat >"$1"' sh "$DATA/server.key" <"$dir/server.key"
    as_pg sh -c 'cat >"$1"' sh "$DATA/server.crt" <"$dir/server.crt"
    if ! grep -q "^ssl = on" "$DATA/postgresql.conf"; then
        printf '%s\n' "ssl = on" "ssl_cert_file = 'server.crt'" "ssl_key_file = 'server.key'" |
            as_pg tee -a "$DATA/postgresql.conf" >/dev/null
    fi
    if running; then
        as_pg "$BIN/pg_ctl" reload -D "$DATA" >/dev/null
    fi
}

# A password for `role`, generated once and kept in secrets/<role>.password.
password_of() {
    local file="$SECRETS/$1.password"
    if [[ ! -s "$file" ]]; then
        (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(24))' >"$file")
    fi
    cat "$file"
}

write_url() {
    local name="$1" role="$2" database="$3"
    (umask 077 && printf 'postgres://%s:%s@%s:%s/%s\n' \
        "$role" "$(password_of "$role")" "$HOST" "$(port)" "$database" >"$SECRETS/$name.url")
}

psql_super() {
    as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$(port)" -U "$SUPERUSER" "$@"
}

provision() {
    local admin_pw reader_pw writer_pw
    admin_pw="$(password_of mcp_lp_admin)"
    reader_pw="$(password_of records_reader)"
    writer_pw="$(password_of records_writer)"
    # Passwords go through stdin, never the command line.
    psql_super -d postgres >/dev/null <<SQL
SELECT format('CREATE ROLE %I', 'mcp_lp_admin') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_lp_admin') \gexec
ALTER ROLE mcp_lp_admin LOGIN SUPERUSER PASSWORD '$admin_pw';
SELECT 'CREATE DATABASE mcp_lp_test OWNER mcp_lp_admin' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mcp_lp_test') \gexec
SELECT 'CREATE DATABASE records' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'records') \gexec
SQL
    # mcp-lp-db's signed principals first: the example's policy asks `mcp_lp.principal()`.
    {
        printf 'SET client_min_messages = warning;\n\\set reader_password %s\n\\set writer_password %s\n' "$reader_pw" "$writer_pw"
        cat "$PRINCIPAL_SQL" "$SCHEMA"
    } | psql_super -d records >/dev/null
    # mcp-lp-state's tables in the same database: an owner that never logs in, the replicas'
    # login role (INSERT and SELECT on the audit table, the governance tables but for changing
    # revocations), and the operator role the governance commands change revocations with.
    local state_pw operator_pw
    state_pw="$(password_of mcp_lp_state)"
    operator_pw="$(password_of mcp_lp_state_operator)"
    psql_super -d records >/dev/null <<SQL
SET client_min_messages = warning;
SELECT 'CREATE ROLE mcp_lp_state_owner NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_lp_state_owner') \gexec
SELECT 'CREATE ROLE mcp_lp_state LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_lp_state') \gexec
SELECT 'CREATE ROLE mcp_lp_state_operator LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_lp_state_operator') \gexec
ALTER ROLE mcp_lp_state LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '$state_pw';
ALTER ROLE mcp_lp_state_operator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '$operator_pw';
GRANT CONNECT ON DATABASE records TO mcp_lp_state, mcp_lp_state_operator;
SQL
    {
        printf 'SET client_min_messages = warning;\n\\set state_owner mcp_lp_state_owner\n\\set state_role mcp_lp_state\n\\set state_operator mcp_lp_state_operator\n'
        cat "$AUDIT_SQL" "$GOVERNANCE_SQL"
    } | psql_super -d records >/dev/null
    write_url admin mcp_lp_admin mcp_lp_test
    write_url records-read records_reader records
    write_url records-write records_writer records
    write_url state mcp_lp_state records
    write_url state-operator mcp_lp_state_operator records
    # The audit chain key of the servers that write to the shared audit table, so that
    # `audit verify --db` can check every chain in it.
    password_of audit-chain-key >/dev/null
    cat >"$ENV_FILE" <<EOF
MCP_LP_PG_HOST=$HOST
MCP_LP_PG_PORT=$(port)
MCP_LP_PG_ADMIN_URL_FILE=$SECRETS/admin.url
MCP_LP_PG_RECORDS_READ_URL_FILE=$SECRETS/records-read.url
MCP_LP_PG_RECORDS_WRITE_URL_FILE=$SECRETS/records-write.url
MCP_LP_PG_STATE_URL_FILE=$SECRETS/state.url
MCP_LP_PG_STATE_OPERATOR_URL_FILE=$SECRETS/state-operator.url
MCP_LP_PG_AUDIT_KEY_FILE=$SECRETS/audit-chain-key.password
MCP_LP_PG_SCRIPT=$REPO_ROOT/scripts/postgres.sh
MCP_LP_PG_CA_FILE=$PG_ROOT/tls/ca.pem
MCP_LP_PG_UNTRUSTED_CA_FILE=$PG_ROOT/tls/untrusted-ca.pem
EOF
}

start() {
    ensure_installed
    [[ -f "$DATA/PG_VERSION" ]] || init_cluster
    ensure_tls
    if ! running; then
        say "starting PostgreSQL on $HOST:$(port) ($DATA)"
        as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null || {
            echo "error: PostgreSQL did not start; see $LOG" >&2
            tail -n 20 "$LOG" >&2 || true
            exit 1
        }
    fi
    provision
}

stop() {
    ensure_installed
    if running; then
        say "stopping PostgreSQL ($DATA)"
        as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart)
    stop
    start
    ;;
status)
    ensure_installed
    if running; then echo "running on $HOST:$(port) ($DATA)"; else
        echo "stopped"
        exit 3
    fi
    ;;
env)
    [[ -f "$ENV_FILE" ]] || {
        echo "error: no cluster yet; run scripts/postgres.sh start" >&2
        exit 1
    }
    # Shell-quoted, for `eval "$(scripts/postgres.sh env)"`.
    while IFS='=' read -r key value; do
        printf 'export %s=%q\n' "$key" "$value"
    done <"$ENV_FILE"
    ;;
psql)
    ensure_installed
    shift
    psql_super -d records "$@"
    ;;
destroy)
    stop
    rm -rf "$PG_ROOT"
    ;;
*)
    echo "usage: scripts/postgres.sh start|stop|restart|status|env|psql|destroy" >&2
    exit 2
    ;;
esac
