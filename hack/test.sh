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
# The tong engines run today (hack/previous-release), for tests/upgrade.rs.
tong_previous
exec cargo test --release --no-fail-fast -- --test-threads=2 "$@"
