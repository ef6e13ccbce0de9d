# hack/env.sh: sourced by the hack/ scripts (bash). Puts cargo on PATH and picks tong's
# build target:
#   x86_64-unknown-linux-musl  the default (.cargo/config.toml): a static, non-PIE binary
#                              that starts fastest and has the smallest peak RSS
#                              (hack/bench-results.md). Its standard library is installed
#                              with rustup when missing.
#   x86_64-unknown-linux-gnu   the fallback where musl's cannot be had (rustup offline):
#                              static glibc, same code, same tests; slower to start.
# Exports CARGO_BUILD_TARGET (cargo honours it over the config) and TONG_BIN, the path of
# the release binary.

if ! command -v cargo >/dev/null 2>&1 && [ -f "${HOME:-/root}/.cargo/env" ]; then
	# shellcheck disable=SC1091
	. "${HOME:-/root}/.cargo/env"
fi

tong_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${CARGO_BUILD_TARGET:-}" ]; then
	CARGO_BUILD_TARGET=x86_64-unknown-linux-musl
	sysroot=$(rustc --print sysroot 2>/dev/null || true)
	if [ ! -d "$sysroot/lib/rustlib/$CARGO_BUILD_TARGET/lib" ] &&
		! timeout 300 rustup target add "$CARGO_BUILD_TARGET" >/dev/null 2>&1; then
		echo "tong: the $CARGO_BUILD_TARGET target cannot be installed here; building for x86_64-unknown-linux-gnu (static glibc) instead" >&2
		CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
	fi
	unset sysroot
fi
export CARGO_BUILD_TARGET
TONG_BIN=$tong_repo/target/$CARGO_BUILD_TARGET/release/tong

# tong_previous: exports TONG_PREVIOUS_BIN, the tong of hack/previous-release (built by
# hack/previous.sh) for tests/upgrade.rs, or TONG_PREVIOUS_ERROR with why it could not be
# built (the upgrade tests then fail, naming it; the rest of the suite runs).
tong_previous() {
	if TONG_PREVIOUS_BIN=$(bash "$tong_repo/hack/previous.sh" 2>/tmp/tong-previous.err); then
		export TONG_PREVIOUS_BIN
	else
		export TONG_PREVIOUS_ERROR="hack/previous.sh failed: $(tail -n 3 /tmp/tong-previous.err | tr '\n' ' ')"
		echo "tong: $TONG_PREVIOUS_ERROR" >&2
	fi
}
