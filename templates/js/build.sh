#!/usr/bin/env bash
# Build {{name}}.wasm from app.js: JavaScript on QuickJS, via componentize-qjs
# (world `{{world}}`). The toolchain scripts in toolchain/ came with this folder;
# README.md says where they install tools.
set -euo pipefail
PLUGIN_NAME="{{name}}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/toolchain/common.sh"
source "$HERE/toolchain/js.sh"
ensure_js_componentizer

# describe() must report the manifest's version.
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
if ! grep -q "^const VERSION = \"$version\";" "$HERE/app.js"; then
  log "app.js VERSION differs from plugin.toml version \"$version\""
  exit 1
fi

# Build to a temporary name so an interrupted build never leaves a truncated component.
log "componentize-qjs app.js -> $PLUGIN_NAME.wasm"
componentize-qjs --wit "$HERE/wit" --world {{world}} --sync \
  --js "$HERE/app.js" --module-root "$HERE" \
  -o "$HERE/$PLUGIN_NAME.wasm.tmp" >/dev/null
mv "$HERE/$PLUGIN_NAME.wasm.tmp" "$HERE/$PLUGIN_NAME.wasm"
log "built $PLUGIN_NAME.wasm ($(du -h "$HERE/$PLUGIN_NAME.wasm" | cut -f1))"
