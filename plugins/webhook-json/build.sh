#!/usr/bin/env bash
# Build webhook-json.wasm from app.py with componentize-py (world `connector`).
set -euo pipefail
PLUGIN_NAME=webhook-json
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../toolchains/common.sh"
source "$HERE/../toolchains/python.sh"
ensure_componentize_py

# describe() must report the manifest's version.
manifest_version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$HERE/plugin.toml")"
grep -q "^VERSION = \"$manifest_version\"" "$HERE/app.py" \
  || { log "app.py VERSION differs from plugin.toml version $manifest_version"; exit 1; }

# componentize-py snapshots only the modules app.py imports; the Python it runs at
# build time writes __pycache__/ next to app.py (gitignored). Build to a temporary
# name so an interrupted build never leaves a truncated component behind.
log "componentize-py $(componentize-py --version | cut -d' ' -f2)"
out="$HERE/$PLUGIN_NAME.wasm"
componentize-py -q -d "$REPO/wit" -w connector componentize app -p "$HERE" -o "$out.tmp"
mv "$out.tmp" "$out"
log "built $PLUGIN_NAME.wasm ($(du -h "$out" | cut -f1))"
