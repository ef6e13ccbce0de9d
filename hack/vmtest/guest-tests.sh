#!/usr/bin/env bash
# Guest side of hack/vmtest/cargo-test.sh (runs inside the VM, from the
# checkout): runs each test binary in turn, as `cargo test` would, and exits
# 101 (cargo's status) when any failed.
#
# Usage: guest-tests.sh NAME=BINARY... -- [TEST-ARGS...]
# Each binary runs as `BINARY --test-threads=2 TEST-ARGS...` under a timeout
# of VMTEST_TEST_TIMEOUT seconds (default 600). Tests named in VMTEST_SKIP
# (space-separated) are skipped: by exact name, or as substrings when
# TEST-ARGS are given (libtest's --exact would apply to those too).
set -uo pipefail

bins=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	bins+=("$1")
	shift
done
[ "${1:-}" = -- ] && shift

skip=()
for t in ${VMTEST_SKIP:-}; do skip+=(--skip "$t"); done
if [ ${#skip[@]} -gt 0 ] && [ $# -eq 0 ]; then skip+=(--exact); fi

if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	cgroups="cgroup v2, controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
elif [ -e /sys/fs/cgroup/unified/cgroup.controllers ]; then
	cgroups="hybrid: cgroup v1 controllers and cgroup2 at /sys/fs/cgroup/unified"
else
	cgroups="legacy: cgroup v1 alone"
fi
echo "vmtest: guest $(uname -r), $(nproc) CPUs, $cgroups"
[ -z "${VMTEST_SKIP// /}" ] || echo "vmtest: skipping (hack/vmtest/skip):${VMTEST_SKIP}"
failed=()
passed=0 nfailed=0
for b in "${bins[@]}"; do
	name=${b%%=*}
	bin=${b#*=}
	echo "     Running tests/$name.rs (${bin#"$PWD"/})"
	out=$(mktemp)
	# Output to a file, followed by tail: a pipe would wait for every process that holds it
	# (a container or an `events` stream a failed test left) after the timeout.
	timeout -k 10 "${VMTEST_TEST_TIMEOUT:-600}" "$bin" --test-threads=2 "${skip[@]}" "$@" >"$out" 2>&1 &
	tp=$!
	tail -n +1 -f --pid="$tp" "$out" &
	tl=$!
	st=0
	wait "$tp" || st=$?
	wait "$tl" 2>/dev/null || true
	[ "$st" = 124 ] && echo "vmtest: tests/$name.rs timed out after ${VMTEST_TEST_TIMEOUT:-600}s"
	# Totals from libtest's summary line.
	read -r p f < <(sed -n 's/^test result: .*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$out" | tail -n1) || true
	passed=$((passed + ${p:-0}))
	nfailed=$((nfailed + ${f:-0}))
	if [ "$st" != 0 ]; then
		failed+=("$name")
		[ "${f:-0}" = 0 ] && nfailed=$((nfailed + 1))
	fi
	p='' f=
	rm -f "$out"
done

echo
if [ ${#failed[@]} -gt 0 ]; then
	echo "vmtest: failing test binaries: ${failed[*]}"
fi
echo "vmtest: $passed passed, $nfailed failed"
[ ${#failed[@]} -eq 0 ] || exit 101
