#!/usr/bin/env bash
# Build the shipped plugins (first run: installs their toolchains into .tools/), then
# run switchyard on its embedded defaults: SQLite in ./.switchyard, plugins from
# ./plugins, recipes from ./recipes, HTTP on 127.0.0.1:7777. Extra arguments go to
# `switchyard serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
plugins/build-all.sh --only plugins
exec cargo run --quiet --bin switchyard -- serve "$@"
