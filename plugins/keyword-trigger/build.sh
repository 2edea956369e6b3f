#!/usr/bin/env bash
# Build keyword-trigger.wasm from app.js: JavaScript on QuickJS, via componentize-qjs.
set -euo pipefail
PLUGIN_NAME=keyword-trigger
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../toolchains/common.sh"
source "$HERE/../toolchains/js.sh"
ensure_js_componentizer

# describe() must report the manifest's version.
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
if ! grep -q "^const VERSION = \"$version\";" "$HERE/app.js"; then
  log "app.js VERSION does not match plugin.toml version \"$version\""
  exit 1
fi

log "componentize-qjs app.js -> $PLUGIN_NAME.wasm"
componentize-qjs --wit "$REPO/wit" --world trigger --sync \
  --js "$HERE/app.js" --module-root "$HERE" \
  -o "$HERE/$PLUGIN_NAME.wasm.tmp" >/dev/null
mv "$HERE/$PLUGIN_NAME.wasm.tmp" "$HERE/$PLUGIN_NAME.wasm"
