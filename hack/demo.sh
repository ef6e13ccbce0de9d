#!/usr/bin/env bash
# Builds tong and runs a demo container from a busybox bundle (as root).
#   hack/demo.sh [ARGS...]     default: a shell one-liner that shows where it runs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it)" >&2; exit 1; }
if [ ! -x /bin/busybox ]; then
	apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
fi
cargo build --release --quiet
bundle=$(mktemp -d /tmp/tong-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
if [ $# -eq 0 ]; then
	set -- sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces"; id; ls /'
fi
CGROUPS_PATH=/tong-demo-$$ hack/mkbundle.sh "$bundle" "$@"
target/release/tong run --bundle "$bundle" "tong-demo-$$"
