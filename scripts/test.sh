#!/usr/bin/env bash
# Build the plugins and test fixtures from source, install the JS test dependencies,
# then run every test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
plugins/build-all.sh
# The Vercel AI SDK that tests/chat_stream.rs reads the chat stream with.
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# Unit tests of the Rust plugins (they build for the host here; one shared target dir).
for manifest in plugins/*/Cargo.toml; do
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}" cargo test --quiet --manifest-path "$manifest"
done
exec cargo test "$@"
