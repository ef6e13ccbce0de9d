#!/usr/bin/env bash
# Builds tong and runs a demo container from a busybox bundle (as root).
#   hack/demo.sh [ARGS...]     default: a shell one-liner that shows where it runs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it)" >&2; exit 1; }
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
# shellcheck source=hack/env.sh
. hack/env.sh
cargo build --release --quiet
bundle=$(mktemp -d /tmp/tong-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
if [ $# -eq 0 ]; then
	set -- sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces"; id; ls /'
fi
CGROUPS_PATH=/tong-demo-$$ hack/mkbundle.sh "$bundle" "$@"
"$TONG_BIN" run --bundle "$bundle" "tong-demo-$$"
