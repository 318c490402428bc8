#!/usr/bin/env bash
# The Argilla server stack for the export tests, in its own venv (.venv-argilla): argilla-server's pins
# (pydantic ~2.9, httpx ~0.27) clash with prefclean's, so it never shares a venv with it.
# Idempotent: a second run with everything in place only checks versions and exits.
# Redis comes from the system package manager (Debian's redis-server), installed by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

VENV=.venv-argilla
PYTHON=${PYTHON:-python3}
PINS=(
  "argilla-server==2.8.0"
  "osmem-server==0.1.6"   # in-memory OpenSearch-compatible server (a Go binary in the wheel)
  "aiosqlite"             # the SQLite driver for ARGILLA_DATABASE_URL=sqlite+aiosqlite://
  "click<8.2"             # argilla-server's typer CLI breaks with click 8.2
)

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
assert version("argilla-server") == "2.8.0" and version("osmem-server") == "0.1.6"
import aiosqlite  # noqa: F401
assert int(version("click").split(".")[1]) < 2
PY
then
  echo "argilla stack already installed in $VENV"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# (the grep only hides pip's notes about unreachable extra indexes configured on some machines)
"$VENV/bin/pip" install -q "${PINS[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -c "import argilla_server, aiosqlite, osmem_server"
echo "argilla stack installed in $VENV: $("$VENV/bin/pip" list 2>/dev/null | grep -iE '^(argilla-server|osmem-server) ' | tr -s ' ' | paste -sd, -)"
