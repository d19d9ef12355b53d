#!/usr/bin/env bash
# Back up retreat: a pg_dump -Fc of the database and a tar of the uploads directory, both 0600.
#
#   scripts/backup.sh [--env-file FILE] [--verify] [DATABASE_URL] [BACKUP_DIR]
#
# --env-file FILE (or RETREAT_ENV_FILE): read DATABASE_URL, UPLOAD_DIR and RETREAT_INSTANCE_DIR
#   from the app's environment file (/etc/retreat/env; NAME=value lines, nothing is executed),
#   so cron, which does not read it, can run this. A DATABASE_URL argument wins over the file.
# BACKUP_DIR (default ./backups): <dbname>-<UTC time>.dump and <dbname>-<UTC time>.uploads.tar.gz.
# The dump needs only the app's own role (read access to its tables); it is checked with
# pg_restore --list. --verify also restores it into a scratch database and compares every
# table's exact row count; that needs a role with CREATEDB and access to the "postgres" database.
# The backup holds clinical fields encrypted: SECRET_KEY and CLINICAL_DATA_KEYS are NOT in it
# (keep them elsewhere). Exits 0 on success, 1 on a failed check, 2 on bad usage.
# Needs pg_dump, pg_restore (and psql for --verify) of the server's major version or newer on
# PATH (or PG_BIN).
set -euo pipefail
umask 077  # dumps hold personal data: readable by their owner only

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
env_file="${RETREAT_ENV_FILE:-}"
verify=0
database_arg=""
backup_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage ;;
    --env-file) [[ $# -ge 2 ]] || usage; env_file="$2"; shift 2 ;;
    --env-file=*) env_file="${1#--env-file=}"; shift ;;
    --verify) verify=1; shift ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    postgres://*|postgresql://*|postgresql+*) database_arg="$1"; shift ;;
    *) [[ -z "$backup_dir" ]] || usage; backup_dir="$1"; shift ;;
  esac
done

# The value of NAME in the environment file: the last "NAME=value" line, quotes removed.
env_value() {
  local name="$1" line value=""
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    if [[ "$line" == "$name="* ]]; then
      value="${line#"$name="}"
      if [[ "$value" == \"*\" || "$value" == \'*\' ]]; then value="${value:1:${#value}-2}"; fi
    fi
  done < "$env_file"
  printf '%s' "$value"
}

database_url="$database_arg"
upload_dir="${UPLOAD_DIR:-}"
instance_dir="${RETREAT_INSTANCE_DIR:-}"
if [[ -n "$env_file" ]]; then
  [[ -r "$env_file" ]] || { echo "cannot read the environment file: $env_file" >&2; exit 2; }
  [[ -n "$database_url" ]] || database_url="$(env_value DATABASE_URL)"
  [[ -n "$upload_dir" ]] || upload_dir="$(env_value UPLOAD_DIR)"
  [[ -n "$instance_dir" ]] || instance_dir="$(env_value RETREAT_INSTANCE_DIR)"
fi
[[ -n "$database_url" ]] || database_url="${DATABASE_URL:-}"
[[ -n "$database_url" ]] || { echo "DATABASE_URL is not set (pass it, or --env-file /etc/retreat/env)" >&2; exit 2; }
backup_dir="${backup_dir:-backups}"
if [[ -z "$upload_dir" ]]; then
  upload_dir="${instance_dir:-$(cd "$(dirname "$0")/.." && pwd)/instance}/uploads"
fi

if [[ -z "${PG_BIN:-}" ]]; then
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
fi
export PATH="${PG_BIN:+$PG_BIN:}$PATH"

url="${database_url/postgresql+psycopg:/postgresql:}"
url="${url/postgres:/postgresql:}"
base="${url%%\?*}"
dbname="${base##*/}"
server="${base%/*}"
[[ -n "$dbname" && "$server" == postgresql://* ]] || { echo "DATABASE_URL is not a postgresql:// URL" >&2; exit 2; }
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$backup_dir"
dump="${backup_dir%/}/${dbname}-${stamp}.dump"
uploads="${backup_dir%/}/${dbname}-${stamp}.uploads.tar.gz"

started=$SECONDS
echo "backup:  pg_dump -Fc ${dbname} -> ${dump}"
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$dump" "$url"
pg_restore --list "$dump" >/dev/null  # a complete, readable archive
echo "         $(du -h "$dump" | cut -f1) in $((SECONDS - started)) s"
if [[ -d "$upload_dir" ]]; then
  tar -czf "$uploads" -C "$upload_dir" .
  echo "uploads: ${upload_dir} -> ${uploads} ($(du -h "$uploads" | cut -f1))"
else
  echo "uploads: ${upload_dir} does not exist yet, nothing to archive"
fi
[[ "$verify" == 1 ]] || exit 0

scratch="${dbname}_restorecheck_$(date -u +%H%M%S)_$$"
scratch_url="${server}/${scratch}"
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
