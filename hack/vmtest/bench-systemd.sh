#!/usr/bin/env bash
# Usage: VMTEST_GUEST=systemd hack/vmtest/run.sh hack/vmtest/bench-systemd.sh [N]
#
# The cost of the systemd cgroup driver, measured where it runs: in the systemd
# guest of hack/vmtest (systemd as PID 1, pure cgroup v2). For tong, runc and
# crun in turn, N (default 20) foreground `run`s of `true`, with the cgroupfs
# driver and with --systemd-cgroup, interleaved; prints the mean and median
# wall time of each and the systemd/cgroupfs and runtime/tong ratios.
# Under TCG the figures are slow in absolute terms; the ratios are the point.
# A figure, not a gate: nothing here fails on a number.
set -euo pipefail
n=${1:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The guest has no Rust toolchain (hack/env.sh would pick a target by asking rustc): take the
# release binary built on the host, or $TONG_BIN (run.sh passes TONG_* variables in).
if [ -z "${TONG_BIN:-}" ]; then
	for t in x86_64-unknown-linux-musl x86_64-unknown-linux-gnu; do
		TONG_BIN=$here/../../target/$t/release/tong
		[ -x "$TONG_BIN" ] && break
	done
fi
[ -x "$TONG_BIN" ] || { echo "bench-systemd: build tong first (cargo build --release)" >&2; exit 1; }
[ -d /run/systemd/system ] || { echo "bench-systemd: systemd is not running here (VMTEST_GUEST=systemd)" >&2; exit 1; }

work=$(mktemp -d /tmp/tong-sdbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
b=$work/bundle
mkdir -p "$b/rootfs/bin"
cp /bin/busybox "$b/rootfs/bin/"
ln -s busybox "$b/rootfs/bin/true"
(cd "$b" && "$TONG_BIN" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' "$b/config.json"

# runc and crun are on the guest's disk; tong is copied there too, so that it does not start
# over 9p from the host's checkout, and into a directory of its own: its seal (a read-only
# overlay of the binary's directory) cannot stack a directory holding the state roots, and
# would fall back to copying itself into a memfd, ~80 ms under TCG.
mkdir -p "$work/bin"
cp "$TONG_BIN" "$work/bin/tong"
declare -A bins=([tong]=$work/bin/tong [runc]=$(command -v runc || true) [crun]=$(command -v crun || true))
declare -A times
runtimes=()
for r in tong runc crun; do [ -n "${bins[$r]}" ] && runtimes+=("$r"); done

now() { date +%s%N; }
for i in $(seq 1 "$n"); do
	for r in "${runtimes[@]}"; do
		for drv in cgroupfs systemd; do
			flag=()
			[ $drv = systemd ] && flag=(--systemd-cgroup)
			id=sdb-$r-$drv-$i
			t0=$(now)
			"${bins[$r]}" --root "$work/root-$r" "${flag[@]}" run --bundle "$b" "$id" >/dev/null 2>"$work/err" ||
				{ echo "bench-systemd: $r $drv run failed: $(tail -n1 "$work/err")" >&2; exit 1; }
			t1=$(now)
			times[$r,$drv]+="$(((t1 - t0) / 1000)) "
		done
	done
done

stats() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "%.1f %.1f\n", s/NR/1000, a[int((NR+1)/2)]/1000}'; }
echo "systemd $(systemctl --version | awk 'NR==1{print $2}'), $(uname -r), $n runs each, interleaved; wall ms of \`run\` of \`true\`"
printf '%-6s %-9s %8s %8s %12s %10s\n' runtime driver mean median "sd/cgroupfs" "vs tong"
declare -A mean
for r in "${runtimes[@]}"; do
	for drv in cgroupfs systemd; do
		read -r m med < <(echo "${times[$r,$drv]}" | stats)
		mean[$r,$drv]=$m
		ratio=-
		[ $drv = systemd ] && ratio=$(awk -v a="$m" -v b="${mean[$r,cgroupfs]}" 'BEGIN{printf "%.2f", a/b}')
		vs=$(awk -v a="$m" -v b="${mean[tong,$drv]}" 'BEGIN{printf "%.2f", a/b}')
		printf '%-6s %-9s %8s %8s %12s %10s\n' "$r" "$drv" "$m" "$med" "$ratio" "$vs"
	done
done
