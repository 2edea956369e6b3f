#!/usr/bin/env bash
# Build echo-agent.wasm from the Rust crate in this folder.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLUGIN_NAME="echo-agent"
source "$HERE/../toolchains/common.sh"
source "$HERE/../toolchains/rust.sh"
build_rust_component "$HERE" "$HERE/echo-agent.wasm"
