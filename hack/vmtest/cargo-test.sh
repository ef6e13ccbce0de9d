#!/usr/bin/env bash
# Usage: hack/vmtest/cargo-test.sh [--test NAME]... [TEST-FILTER...] [-- TEST-ARGS...]
#
# Builds the integration test binaries on the host (cargo test --release
# --no-run) and runs them all in ONE boot of the test VM (hack/vmtest/run.sh:
# Debian's kernel, pure cgroup v2), each with --test-threads=2, printing
# cargo-like output. --test NAME (repeatable) picks tests/NAME.rs only;
# filters and TEST-ARGS go to every binary, as with `cargo test`.
# Tests listed in hack/vmtest/skip (with the reason) are skipped in the VM
# (VMTEST_SKIP="NAME..." replaces that list; VMTEST_SKIP=" " skips none).
# VMTEST_GUEST=systemd runs them in the systemd guest (run.sh) instead.
# Time limits: VMTEST_TIMEOUT for the whole VM (default 1500 s) and
# VMTEST_TEST_TIMEOUT for one test file (default 600 s).
# Exits non-zero when any test failed (101), or with run.sh's 124/125.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

tests=()
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--test) tests+=("$2"); shift 2 ;;
	--test=*) tests+=("${1#--test=}"); shift ;;
	--) shift; args+=("$@"); break ;;
	*) args+=("$1"); shift ;;
	esac
done

# shellcheck source=hack/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../env.sh"

# The VM runs under TCG here: the concurrency test's 200 lifecycles (issue 9's figure, run on
# the host) shrink to 40 inside it unless asked for.
export TONG_STRESS_CONTAINERS=${TONG_STRESS_CONTAINERS:-40}
# Tests that would touch the host's own mounts if tong were wrong run only there.
export TONG_IN_VM=1
# In the systemd guest (VMTEST_GUEST=systemd) the systemd driver's tests must run, not skip.
case ${VMTEST_GUEST:-busybox} in systemd | engines) export TONG_EXPECT_SYSTEMD=1 ;; esac

start=$SECONDS
sel=()
for t in "${tests[@]}"; do sel+=(--test "$t"); done
[ ${#tests[@]} -gt 0 ] || sel=(--tests)
json=$(cargo test --release --no-run --message-format=json-render-diagnostics "${sel[@]}")
# NAME=PATH for each integration test binary (target kind "test").
mapfile -t bins < <(printf '%s\n' "$json" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"] + "=" + m["executable"])
' | sort -u)
[ ${#bins[@]} -gt 0 ] || { echo "vmtest: no integration test binaries built" >&2; exit 1; }

# Known failures in the VM: one test name per line, `#` for the reason.
skips=
while read -r name _; do
	case $name in '' | '#'*) continue ;; esac
	skips+=" $name"
done <"$here/skip"

# The tong engines run today, for tests/upgrade.rs (the checkout is shared with the guest,
# and run.sh passes TONG_* variables in).
tong_previous
echo "vmtest: built ${#bins[@]} test binaries in $((SECONDS - start))s; running them in the VM"
st=0
VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-1500} VMTEST_SKIP=${VMTEST_SKIP:-$skips} \
	VMTEST_ENV="${VMTEST_ENV:-} VMTEST_TEST_TIMEOUT VMTEST_SKIP" \
	"$here/run.sh" "$here/guest-tests.sh" "${bins[@]}" -- "${args[@]}" || st=$?
echo "vmtest: VM tests took $((SECONDS - start))s in all (exit $st)"
exit $st
