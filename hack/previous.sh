#!/usr/bin/env bash
# Usage: hack/previous.sh
# Builds the tong of hack/previous-release (the one engines run today) from this repository's
# history and prints the binary's path. tests/upgrade.rs uses it (TONG_PREVIOUS_BIN) to create
# containers that the tong under test must then manage: an upgrade under running containers.
# A debug build (about 1.5 min cold; the crates are those of this checkout's registry cache)
# in a temporary directory; only the binary is kept, in target/previous/<commit>/tong.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=hack/env.sh
. hack/env.sh
rev=$(grep -v '^#' hack/previous-release | tr -d '[:space:]')
out=target/previous/$rev/tong
if [ -x "$out" ]; then
	echo "$PWD/$out"
	exit 0
fi
if ! git cat-file -e "$rev^{commit}" 2>/dev/null; then
	echo "previous: commit $rev (hack/previous-release) is not in this clone's history (a shallow clone?)" >&2
	exit 1
fi
work=$(mktemp -d /tmp/tong-previous.XXXXXX)
trap 'rm -rf "$work"' EXIT
git archive "$rev" | tar -x -C "$work"
echo "previous: building tong $rev (debug) for the upgrade tests..." >&2
(cd "$work" && cargo build --quiet --bin tong --target-dir "$work/target" >&2)
mkdir -p "$(dirname "$out")"
cp "$work/target/$CARGO_BUILD_TARGET/debug/tong" "$out.tmp"
mv "$out.tmp" "$out"
echo "$PWD/$out"
