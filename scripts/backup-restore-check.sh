#!/usr/bin/env bash
# Back up a PostgreSQL database and prove the backup restores: pg_dump -Fc, pg_restore into a
# scratch database, compare the exact row count of every table, drop the scratch database.
#
#   scripts/backup-restore-check.sh DATABASE_URL [BACKUP_DIR]
#
# DATABASE_URL: postgresql://user@host:port/dbname (a "+psycopg" driver suffix is accepted).
# BACKUP_DIR (default ./backups): the dump is kept there as <dbname>-<UTC time>.dump.
# Exits 0 when every table has the same number of rows in the restore, 1 otherwise.
# Needs pg_dump, pg_restore and psql of the server's major version or newer on PATH (or PG_BIN).
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

url="${1/postgresql+psycopg:/postgresql:}"
backup_dir="${2:-backups}"
if [[ -z "${PG_BIN:-}" ]]; then
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
fi
export PATH="${PG_BIN:+$PG_BIN:}$PATH"

base="${url%%\?*}"
dbname="${base##*/}"
server="${base%/*}"
[[ -n "$dbname" && "$server" == postgresql://* ]] || { echo "not a postgresql:// URL: $1" >&2; exit 2; }
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
scratch="${dbname}_restorecheck_$(date -u +%H%M%S)_$$"
scratch_url="${server}/${scratch}"
mkdir -p "$backup_dir"
dump="${backup_dir%/}/${dbname}-${stamp}.dump"

cleanup() { psql -X -q "${server}/postgres" -c "DROP DATABASE IF EXISTS \"${scratch}\" WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Exact counts of every ordinary table outside the system schemas, "schema.table<TAB>count".
row_counts() {
  local u="$1"
  psql -X -q -At -F $'\t' "$u" <<'SQL' | sort
CREATE TEMP TABLE _counts(name text, n bigint);
DO $$
DECLARE t record; c bigint;
BEGIN
  FOR t IN SELECT table_schema, table_name FROM information_schema.tables
           WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
             AND table_schema NOT LIKE 'pg_temp%'
  LOOP
    EXECUTE format('SELECT count(*) FROM %I.%I', t.table_schema, t.table_name) INTO c;
    INSERT INTO _counts VALUES (t.table_schema || '.' || t.table_name, c);
  END LOOP;
END $$;
SELECT name, n FROM _counts;
SQL
}

started=$SECONDS
echo "backup:  pg_dump -Fc ${dbname} -> ${dump}"
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$dump" "$url"
echo "         $(du -h "$dump" | cut -f1) in $((SECONDS - started)) s"

started=$SECONDS
echo "restore: pg_restore -> scratch database ${scratch}"
psql -X -q "${server}/postgres" -c "CREATE DATABASE \"${scratch}\"" >/dev/null
pg_restore --exit-on-error --no-owner --no-privileges --jobs=2 --dbname="$scratch_url" "$dump"
echo "         restored in $((SECONDS - started)) s"

before="$(row_counts "$url")"
after="$(row_counts "$scratch_url")"
tables=$(printf '%s\n' "$before" | grep -c . || true)
rows=$(printf '%s\n' "$before" | awk -F'\t' '{s += $2} END {print s + 0}')
if [[ "$before" == "$after" ]]; then
  echo "check:   OK, ${tables} tables, ${rows} rows, every table's row count identical"
  exit 0
fi
echo "check:   MISMATCH (table, rows in ${dbname} | rows in the restore):" >&2
diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
exit 1
