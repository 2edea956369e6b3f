#!/usr/bin/env bash
# Build {{name}}.wasm from app.py with componentize-py (world `{{world}}`).
# The toolchain scripts in toolchain/ came with this folder; README.md says where
# they install tools.
set -euo pipefail
PLUGIN_NAME="{{name}}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/toolchain/common.sh"
source "$HERE/toolchain/python.sh"
ensure_componentize_py

# describe() must report the manifest's version.
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
if ! grep -q "^VERSION = \"$version\"" "$HERE/app.py"; then
  log "app.py VERSION differs from plugin.toml version \"$version\""
  exit 1
fi

# Build to a temporary name so an interrupted build never leaves a truncated component.
out="$HERE/$PLUGIN_NAME.wasm"
log "componentize-py app.py -> $PLUGIN_NAME.wasm"
componentize-py -q -d "$HERE/wit" -w {{world}} componentize app -p "$HERE" -o "$out.tmp"
mv "$out.tmp" "$out"
log "built $PLUGIN_NAME.wasm ($(du -h "$out" | cut -f1))"
