#!/usr/bin/env bash
# Fuzz the live HTTP API with schemathesis against the OpenAPI document it serves:
# zero 5xx answers and zero answers that break the document (status codes, content
# types, headers, body schemas). Starts a server on the shipped plugins and recipes
# (fresh data dir, a throwaway admin token); prints the number of cases it ran.
# Expects a built `target/debug/switchyard` and the plugins built (scripts/test.sh
# does both). Extra arguments go to `st run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VERSION=4.32.5
VENV=$ROOT/.tools/schemathesis-$VERSION
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
fi

WORK=$(mktemp -d)
TOKEN=fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/recipes"
cp recipes/*.yaml "$WORK/recipes/" 2>/dev/null || true
SWITCHYARD_ADMIN_TOKEN=$TOKEN SWITCHYARD_LOG=warn ./target/debug/switchyard serve \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --plugins "$ROOT/plugins" \
  --recipes "$WORK/recipes" --cache-dir "$ROOT/target/test-component-cache" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 600); do
  python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]}), timeout=2)' \
    "http://127.0.0.1:$PORT/readyz" "$TOKEN" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/server.err"; exit 1; }
  sleep 0.2
done

# Event streams never end by themselves: they are left out (tests/ cover them).
# Long-poll claims wait at most 60 s, hence the request timeout.
rc=0
( cd "$WORK" && HYPOTHESIS_STORAGE_DIRECTORY="$WORK/hypothesis" "$VENV/bin/st" run \
    "http://127.0.0.1:$PORT/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --exclude-path-regex '/events$' \
    --max-examples 25 --request-timeout 65 --wait-for-schema 30 \
    --generation-database none --no-color --seed 1 \
    --report json --report-json-path "$WORK/report.json" "$@" </dev/null ) || rc=$?
python3 - "$WORK/report.json" <<'PY' || true
import json, sys
t = json.load(open(sys.argv[1]))["test_cases"]
bad = t["with_failures"] + t["errored"]
print(f"schemathesis: {t['generated']} cases, {t['generated'] - bad} passed, {bad} failed")
PY
if grep -q "panicked" "$WORK/server.err"; then
  echo "the server panicked:"; grep -A5 "panicked" "$WORK/server.err"; rc=1
fi
exit $rc
