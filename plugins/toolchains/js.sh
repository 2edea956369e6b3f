# JavaScript toolchain for plugin build scripts. Source it after common.sh.
#
# JavaScript plugins run on QuickJS: componentize-qjs (npm) compiles an ES module and
# the plugin's WIT world into a component, snapshotting the initialised engine with
# Wizer. Its native compiler comes as the optional npm dependency
# @andreiltd/componentize-qjs-binding-<platform>, so only the npm registry is needed.

JS_COMPONENTIZER_VERSION="0.4.5"

# Install componentize-qjs into $TOOLS/node (once per version) and put it on PATH.
ensure_js_componentizer() {
  command -v npm >/dev/null 2>&1 || apt_ensure nodejs npm
  local prefix="$TOOLS/node"
  local manifest="$prefix/node_modules/componentize-qjs/package.json"
  local installed=""
  [ -f "$manifest" ] && installed="$(node -p "require('$manifest').version")"
  if [ "$installed" != "$JS_COMPONENTIZER_VERSION" ]; then
    log "installing componentize-qjs@$JS_COMPONENTIZER_VERSION into $prefix"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --save-exact --include=optional \
      --loglevel=error "componentize-qjs@$JS_COMPONENTIZER_VERSION" >&2
  fi
  export PATH="$prefix/node_modules/.bin:$PATH"
}
