#!/usr/bin/env bash
# Build the plugins and test fixtures from source, then run every test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
plugins/build-all.sh
exec cargo test "$@"
