# C toolchain for plugins: Debian's clang/lld with wasi-libc, the wit-bindgen CLI and
# wasm-tools. Source it after common.sh; it sets WIT_BINDGEN (the CLI's path).
#
# No official PyPI, npm or Debian package ships the wit-bindgen CLI, so it is built
# from crates.io with only its C generator (a few minutes on 2 cores) into
# $TOOLS/cargo, in a throw-away target dir so the repository's target/ is never touched.

WIT_BINDGEN_VERSION="0.63.0"
WIT_BINDGEN="$TOOLS/cargo/bin/wit-bindgen"

ensure_wit_bindgen() {
  if "$WIT_BINDGEN" --version 2>/dev/null | grep -qF " $WIT_BINDGEN_VERSION"; then
    return
  fi
  log "cargo install wit-bindgen-cli@$WIT_BINDGEN_VERSION (C generator only)"
  local target
  target="$(mktemp -d)"
  CARGO_TARGET_DIR="$target" cargo install --locked --quiet --force --root "$TOOLS/cargo" \
    --no-default-features --features c "wit-bindgen-cli@$WIT_BINDGEN_VERSION" ||
    { rm -rf "$target"; return 1; }
  rm -rf "$target"
}

ensure_c_toolchain() {
  apt_ensure clang lld wasi-libc libclang-rt-14-dev-wasm32
  ensure_wit_bindgen
  ensure_wasm_tools
}
