# Rust guest toolchain: rustup's wasm32-wasip2 target. Source it after common.sh.
# On wasm32-wasip2, `cargo build` already emits a component (rustc links it with
# wasm-component-ld), so no wasm-tools step is needed. Each guest crate pins its
# wit-bindgen version in its own Cargo.toml and Cargo.lock.
RUST_WASM_TARGET="wasm32-wasip2"

# Add the wasm32-wasip2 target to the active toolchain if it is missing.
ensure_rust_wasm_target() {
  if ! command -v rustup >/dev/null 2>&1; then
    log "rustup not found: install Rust with rustup (https://rustup.rs) first"
    return 1
  fi
  if ! rustup target list --installed | grep -qx "$RUST_WASM_TARGET"; then
    log "rustup target add $RUST_WASM_TARGET"
    rustup target add "$RUST_WASM_TARGET" >&2
  fi
}

# build_rust_component CRATE_DIR OUT_WASM: build the cdylib crate in CRATE_DIR in
# release mode for wasm32-wasip2 and copy the component to OUT_WASM.
# CARGO_TARGET_DIR defaults to $REPO/target, shared with the host build.
build_rust_component() {
  local crate_dir="$1" out="$2"
  local manifest="$crate_dir/Cargo.toml"
  local target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
  ensure_rust_wasm_target

  # The artefact is named after the crate with '-' turned into '_'.
  local crate
  crate="$(sed -n '/^\[package\]/,/^\[/ s/^name *= *"\([^"]*\)".*/\1/p' "$manifest" | head -n1)"
  if [ -z "$crate" ]; then
    log "no [package] name in $manifest"
    return 1
  fi

  # A committed Cargo.lock keeps the dependency versions reproducible.
  local locked=()
  [ -f "$crate_dir/Cargo.lock" ] && locked=(--locked)

  log "cargo build --release --target $RUST_WASM_TARGET ($crate)"
  CARGO_TARGET_DIR="$target_dir" cargo build --release --target "$RUST_WASM_TARGET" \
    "${locked[@]}" --manifest-path "$manifest"
  cp "$target_dir/$RUST_WASM_TARGET/release/${crate//-/_}.wasm" "$out"
  log "built $out ($(wc -c <"$out") bytes)"
}
