#!/usr/bin/env bash
# Usage: hack/vmtest/run.sh hack/vmtest/bench-checkpoint.sh [RUNS [RUNTIMES...]]
#
# hack/bench.sh's checkpoint case where CRIU works: in hack/vmtest's busybox guest, whose
# kernel is Debian's (6.1). On newer host kernels Debian 12's criu 3.17 fails `criu check`
# ("vdso: Unexpected rt vDSO area bounds") and bench.sh skips the case there. The guest
# sees the host's / read-only, so its criu, runc, crun, hyperfine and python3 work there.
# Runs `CASES=checkpoint CKPT_RUNS=RUNS (default 5) RUNTIMES=... hack/bench.sh` with
# RUNTIMES (default tong runc crun); bench.sh replaces the checkpoint section of
# hack/bench-results.md with this run's (the raw data: target/bench/<date>-<pid>/).
# The tong measured is $TONG_BIN (run.sh passes TONG_* in; TONG_LABEL, if set, names it in
# the results; TONG_BENCH_NOTE, if set, is added to where it ran: say, the host's load) or
# the release build, copied into the guest's /tmp as
# hack/vmtest/bench-systemd.sh does (not started over 9p; its seal then overlays a
# directory of its own). runc and crun run from the host's / (9p, page-cached after the
# untimed first cycle). Under TCG (no usable KVM on the host) the figures are slow in
# absolute terms and follow the host's load; the ratios are the point.
set -euo pipefail
args="$*"
runs=${1:-5}
[ $# -gt 0 ] && shift
runtimes=${*:-tong runc crun}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -d /run/vmtest/x ] ||
	echo "bench-checkpoint: not in hack/vmtest's guest? (run: hack/vmtest/run.sh hack/vmtest/bench-checkpoint.sh)" >&2
if [ -z "${TONG_BIN:-}" ]; then
	for t in x86_64-unknown-linux-musl x86_64-unknown-linux-gnu; do
		TONG_BIN=$here/target/$t/release/tong
		[ -x "$TONG_BIN" ] && break
	done
fi
[ -x "$TONG_BIN" ] || { echo "bench-checkpoint: build tong first (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/tong-ckbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
cp "$TONG_BIN" "$work/bin/tong"

# qemu's accelerator, as the guest's kernel saw it.
accel="qemu TCG (software emulation)"
if dmesg 2>/dev/null | grep -q 'Hypervisor detected: KVM'; then accel="qemu KVM"; fi
# How the results name it: TONG_LABEL (say, the commit it was built from), then the binary.
label="${TONG_LABEL:+$TONG_LABEL, }$(realpath --relative-to="$here" "$TONG_BIN" 2>/dev/null || echo "$TONG_BIN"), sha256 $(sha256sum "$TONG_BIN" | cut -c1-12), built $(date -u -r "$TONG_BIN" '+%Y-%m-%d %H:%M UTC')"

# hack/env.sh picks a build target by asking rustc, which the guest may not run: no build
# happens here (TONG is set), so name the default target.
export CARGO_BUILD_TARGET=${CARGO_BUILD_TARGET:-x86_64-unknown-linux-musl}
cd "$here"
env CASES=checkpoint CKPT_RUNS="$runs" RUNTIMES="$runtimes" TONG="$work/bin/tong" TONG_LABEL="$label" \
	BENCH_WHERE="hack/vmtest's busybox guest, $accel${TONG_BENCH_NOTE:+; $TONG_BENCH_NOTE}: \`hack/vmtest/run.sh hack/vmtest/bench-checkpoint.sh${args:+ $args}\`" \
	bash hack/bench.sh
