#!/usr/bin/env bash
# dbt-duckdb for the comparison test (tests/test_dbt_duckdb_compare.py), in its own venv (.venv-dbt): dbt-core's
# pins (protobuf, jsonschema, click ...) are not prefclean's, so it never shares a venv with it. duckdb is pinned
# to prefclean's own version, so both write warehouse files the other can read.
# Idempotent: a second run with everything in place only checks versions and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

VENV=.venv-dbt
PYTHON=${PYTHON:-python3}
DBT_DUCKDB=1.11.1
# dbt-core 1.11+ depends on a parser package whose build downloads a binary from outside the package registry
# (it fails offline); 1.10 has unit tests, data_tests: and 1.10's `arguments:`, all the fixture uses.
DBT_CORE=1.10.23
# prefclean's duckdb (the venv that runs the tests: $PREFCLEAN_PYTHON, else .venv, else this python)
HOST=${PREFCLEAN_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo "$PYTHON" )}
DUCKDB=$("$HOST" -c "import duckdb; print(duckdb.__version__)")

if [ -x "$VENV/bin/dbt" ] && "$VENV/bin/python" - "$DBT_DUCKDB" "$DUCKDB" "$DBT_CORE" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
assert version("dbt-duckdb") == sys.argv[1] and version("duckdb") == sys.argv[2] and version("dbt-core") == sys.argv[3]
PY
then
  echo "dbt-duckdb already installed in $VENV"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "dbt-duckdb==$DBT_DUCKDB" "dbt-core==$DBT_CORE" "duckdb==$DUCKDB" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/dbt" --version >/dev/null
echo "dbt-duckdb installed in $VENV: $("$VENV/bin/pip" list 2>/dev/null | grep -iE '^(dbt-core|dbt-duckdb|duckdb) ' | tr -s ' ' | paste -sd, -)"
