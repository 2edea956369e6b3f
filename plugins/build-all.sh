#!/usr/bin/env bash
# Build every shipped plugin (plugins/*/build.sh) and the test fixtures
# (tests/fixtures/*/build.sh) whose sources changed since their last build.
# A plugin is up to date when the hash of its folder's sources equals the hash stored
# beside its component; toolchains install themselves into .tools/ on first use.
#
# Usage: plugins/build-all.sh [--force] [--only plugins|fixtures]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
force=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --only) only="$2"; shift ;;
    *) echo "usage: $0 [--force] [--only plugins|fixtures]" >&2; exit 2 ;;
  esac
  shift
done

# Hash of a plugin's sources: every tracked-looking file except build outputs.
source_hash() {
  (cd "$1" && find . -type f \
      ! -name '*.wasm' ! -name '.build-hash' \
      ! -path './build/*' ! -path './node_modules/*' ! -path './target/*' \
      ! -path './__pycache__/*' -print0 \
    | sort -z | xargs -0 sha256sum; cat "$REPO/wit/"*.wit) | sha256sum | cut -d' ' -f1
}

dirs=()
[ "$only" != "fixtures" ] && for d in "$REPO"/plugins/*/; do [ -f "$d/build.sh" ] && dirs+=("${d%/}"); done
[ "$only" != "plugins" ] && for d in "$REPO"/tests/fixtures/*/; do [ -f "$d/build.sh" ] && dirs+=("${d%/}"); done

failed=()
for dir in "${dirs[@]}"; do
  name="$(basename "$dir")"
  hash="$(source_hash "$dir")"
  if [ $force -eq 0 ] && [ -f "$dir/.build-hash" ] && [ "$(cat "$dir/.build-hash")" = "$hash" ] \
     && ls "$dir"/*.wasm >/dev/null 2>&1; then
    echo "plugins: $name is up to date"
    continue
  fi
  echo "plugins: building $name"
  start=$(date +%s)
  if bash "$dir/build.sh"; then
    echo "$hash" > "$dir/.build-hash"
    echo "plugins: built $name in $(( $(date +%s) - start )) s"
  else
    echo "plugins: FAILED to build $name" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "plugins: failed: ${failed[*]}" >&2
  exit 1
fi
