#!/usr/bin/env bash
# Builds throttle-trigger.wasm, a component of world `trigger` (switchyard:plugin),
# from C: wit-bindgen generates the bindings, clang compiles to a wasm32-wasi
# reactor module, wasm-tools turns it into a component. No WASI adapter is needed:
# the code uses no stdio, files or clock, so the module imports no wasi_snapshot_preview1.
set -euo pipefail
PLUGIN_NAME=throttle-trigger
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../toolchains/common.sh"
source "$HERE/../toolchains/c.sh"
ensure_c_toolchain

VERSION="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
BUILD="$HERE/build"
rm -rf "$BUILD"
mkdir -p "$BUILD/gen"

if ! out="$("$WIT_BINDGEN" c "$REPO/wit" --world trigger --out-dir "$BUILD/gen" 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -std=c11 -Os -s \
  -Wall -Wextra -DPLUGIN_VERSION="\"$VERSION\"" -I "$BUILD/gen" \
  "$HERE/throttle.c" "$HERE/json.c" "$HERE/rfc3339.c" \
  "$BUILD/gen/trigger.c" "$BUILD/gen/trigger_component_type.o" \
  -o "$BUILD/core.wasm"
wasm-tools component new "$BUILD/core.wasm" -o "$BUILD/$PLUGIN_NAME.wasm"
mv "$BUILD/$PLUGIN_NAME.wasm" "$HERE/$PLUGIN_NAME.wasm"
log "built $PLUGIN_NAME.wasm ($(wc -c <"$HERE/$PLUGIN_NAME.wasm") bytes)"
