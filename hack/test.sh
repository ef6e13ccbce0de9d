#!/usr/bin/env bash
# Runs the whole test suite (unit tests and integration tests with real containers) as root.
# Installs the few Debian packages the tests use when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "test: run as root (the integration tests start real containers)" >&2; exit 1; }
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
command -v strace >/dev/null || need+=(strace)
command -v cc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
# shellcheck source=hack/env.sh
. hack/env.sh
# The tong engines run today (hack/previous-release), for tests/upgrade.rs. If it cannot be
# built (a shallow clone lacks the commit), the rest of the suite still runs and the upgrade
# tests fail, naming the reason.
if TONG_PREVIOUS_BIN=$(bash hack/previous.sh 2>/tmp/tong-previous.err); then
	export TONG_PREVIOUS_BIN
else
	export TONG_PREVIOUS_ERROR="hack/previous.sh failed: $(tail -n 3 /tmp/tong-previous.err | tr '\n' ' ')"
	echo "test: $TONG_PREVIOUS_ERROR" >&2
fi
exec cargo test --release --no-fail-fast -- --test-threads=2 "$@"
