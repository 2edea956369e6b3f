#!/usr/bin/env bash
# Build {{name}}.wasm from C (world `{{world}}`): wit-bindgen generates the bindings,
# clang compiles a wasm32-wasi reactor module, wasm-tools makes it a component. The
# code uses no stdio, files or clock, so no WASI adapter is needed.
# The toolchain scripts in toolchain/ came with this folder; README.md says where
# they install tools.
set -euo pipefail
PLUGIN_NAME="{{name}}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/toolchain/common.sh"
source "$HERE/toolchain/c.sh"
ensure_c_toolchain

# describe() reports the manifest's version, passed in as PLUGIN_VERSION.
VERSION="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
BUILD="$HERE/build"
rm -rf "$BUILD"
mkdir -p "$BUILD/gen"

if ! out="$("$WIT_BINDGEN" c "$HERE/wit" --world {{world}} --out-dir "$BUILD/gen" 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
log "clang plugin.c json.c -> $PLUGIN_NAME.wasm"
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -std=c11 -Os -s \
  -Wall -Wextra -DPLUGIN_VERSION="\"$VERSION\"" -I "$BUILD/gen" \
  "$HERE/plugin.c" "$HERE/json.c" \
  "$BUILD/gen/{{c_world}}.c" "$BUILD/gen/{{c_world}}_component_type.o" \
  -o "$BUILD/core.wasm"
wasm-tools component new "$BUILD/core.wasm" -o "$BUILD/$PLUGIN_NAME.wasm"
mv "$BUILD/$PLUGIN_NAME.wasm" "$HERE/$PLUGIN_NAME.wasm"
log "built $PLUGIN_NAME.wasm ($(wc -c <"$HERE/$PLUGIN_NAME.wasm") bytes)"
