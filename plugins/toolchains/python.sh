# Python guest toolchain: componentize-py in the shared venv. Source it after common.sh.
# componentize-py bundles CPython and turns a Python module plus a WIT world into a
# component (no system toolchain needed beyond python3 + pip).
COMPONENTIZE_PY_VERSION="0.25.1"

# Install componentize-py (pinned) into $TOOLS/venv if missing or at another
# version, and put the venv's bin on PATH.
ensure_componentize_py() {
  pip_tool "componentize-py==$COMPONENTIZE_PY_VERSION" componentize-py
  if ! "$TOOLS/venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY_VERSION"; then
    log "installing componentize-py==$COMPONENTIZE_PY_VERSION"
    "$TOOLS/venv/bin/pip" install -q "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  export PATH="$TOOLS/venv/bin:$PATH"
}
