#!/usr/bin/env bash
# Build {{name}}.wasm from the Rust crate in this folder (world `{{world}}`).
# The toolchain scripts in toolchain/ came with this folder; README.md says where
# they install tools.
set -euo pipefail
PLUGIN_NAME="{{name}}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/toolchain/common.sh"
source "$HERE/toolchain/rust.sh"

# describe() reports the crate's version: it must equal the manifest's.
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$HERE/plugin.toml")"
crate_version="$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$HERE/Cargo.toml" | head -n1)"
if [ "$version" != "$crate_version" ]; then
  log "Cargo.toml version \"$crate_version\" differs from plugin.toml version \"$version\""
  exit 1
fi

# Inside a Switchyard checkout, share its target/ with the host build (as the shipped
# plugins do); elsewhere build in ./target. CARGO_TARGET_DIR, when set, wins.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ -n "$REPO" ]; then CARGO_TARGET_DIR="$REPO/target"; else CARGO_TARGET_DIR="$HERE/target"; fi
fi
export CARGO_TARGET_DIR
build_rust_component "$HERE" "$HERE/{{name}}.wasm"
