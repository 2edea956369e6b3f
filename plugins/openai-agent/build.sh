#!/usr/bin/env bash
# Build openai-agent.wasm from the Rust crate in this folder.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLUGIN_NAME="openai-agent"
source "$HERE/../toolchains/common.sh"
source "$HERE/../toolchains/rust.sh"
build_rust_component "$HERE" "$HERE/openai-agent.wasm"
