#!/usr/bin/env bash
# hack/bench.sh: how fast tong starts containers, side by side with crun, runc and youki.
#
# Usage (as root):  hack/bench.sh [--quick] [--rev REV]
#   --quick    few runs per case; results stay in target/bench/ (hack/ is left alone)
#   --rev REV  benchmark tong built from commit REV (git archive into target/bench-tools/)
#              instead of the working tree (useful while someone is editing src/)
# Environment: RUNTIMES ("tong crun runc youki"), TONG (a tong binary to use as is;
#   TONG_LABEL: how the results name it, default its path),
#   RUNS (runs per round, 30), ROUNDS (2), WARMUP (3), TP_RUNS (runs of the throughput case
#   per round, 5), TP_N (containers per throughput run, 100), RSS_RUNS (10), POD_RUNS (10; 0: no pod case),
#   SCALE (containers alive in the scale case, "1 100 400"; empty: no scale case),
#   CKPT_RUNS (checkpoint-and-restore cycles per runtime, 5; 0: no checkpoint case),
#   CASES (which cases run, "start scale pod memory checkpoint": start is run,
#   run+seccomp, run+seccomp-cold, lifecycle, exec and 100 x run; with fewer, the report
#   stays in target/bench/ as with --quick, except for the checkpoint section, below),
#   YOUKI_VERSION (0.7.0), STRACE (1: also record `strace -c -f` of one `run` per runtime),
#   WAIT_IDLE (0: seconds to wait, before timing, for the 1-minute load average to fall
#   below 1; the load before and after is recorded with the results either way),
#   BENCH_WHERE (free text: where this ran, recorded with the results; set by
#   hack/vmtest/bench-checkpoint.sh).
#
# Cases (hyperfine -N: hyperfine execs the runtime directly, no shell in between; WARMUP
# warm-up runs, then RUNS timed runs, ROUNDS times, the runtimes taking turns per round so
# that drift on a busy host spreads over all of them):
#   run          `R run ID` of /bin/true: `tong spec`'s default (pid, net, ipc, uts, mount
#                namespaces, default mounts) plus linux.resources memory.limit 256 MiB and
#                pids.limit 128. The row "floor" is `unshare -fmpnui /bin/true`.
#   run+seccomp  the same with podman's default seccomp profile (437 syscalls), which is
#                tests/data/podman-seccomp.json: linux.seccomp of the config.json podman 4.3.1
#                (Debian 12) wrote for `podman create --rootfs ... && podman init`.
#   run+seccomp-cold  the same with tong's compiled-seccomp cache removed before each run
#                (hyperfine --prepare, untimed): tong's first start with a new profile.
#   lifecycle    `R create`, `R start` and `R delete` as separate commands, each timed on its
#                own: hyperfine's --prepare (untimed) brings the container to the state the
#                command needs; run i of the case is the sum of run i of the three commands.
#   exec         `R exec ID /bin/true` into a running container (busybox sleep).
#   100 x run    TP_N containers `R run` of /bin/true, two at a time (two sh loops).
#   list@N, state@N  the scale case, once after the rounds: with N containers alive
#                (busybox sleep, each with its own cgroup, started with `R run -d`), `R list`
#                and `R state` of one of them, RUNS runs each; N from SCALE.
#   memory       peak RSS of `R run` (/usr/bin/time -v; the runtime and the children it
#                waits for), size of the runtime's executable.
#   pod          through Kubernetes' path, once after the scale case: a private containerd with
#                its CRI plugin and a runtime handler for each of tong, crun and runc
#                (hack/e2e/cri.sh's bench step), POD_RUNS (10) pod starts (RunPodSandbox +
#                CreateContainer + StartContainer) and teardowns per handler, every RPC timed.
#                containerd, its Go shim, the pause container and CNI take most of that time:
#                the report gives the ratios and where the time goes.
#   checkpoint   last, where `criu check` passes (elsewhere skipped, saying why): CKPT_RUNS
#                cycles per runtime, the runtimes taking turns per cycle, after one untimed
#                cycle each (which also finds a runtime that cannot checkpoint here: crun
#                built without CRIU, say; it is reported n/a with its error). A cycle: a
#                fresh detached container (untimed; busybox `sh -c` looping on `sleep 1`,
#                stdin a pipe whose writer is gone, stdout and stderr a pipe to a `cat`:
#                CRIU dumps pipes, but not the host's /dev/null, which is outside the
#                container's mounts), then `R checkpoint --image-path DIR ID` and
#                `R restore -d --bundle B --image-path DIR ID` of that image, one hyperfine
#                call with one run of each, then `R delete -f ID` (untimed). CRIU's logs of
#                every cycle (dump.log, restore.log: log level 4, as runc and tong both ask
#                for) are kept; the report takes CRIU's own time from their timestamps and
#                gives the runtime's share, the wall time minus that. Each cycle also times
#                two `criu --version`: starting CRIU's executable, which each command pays
#                twice (a `criu swrk` for CRIU's version, then one for the request).
#                Debian 12's criu 3.17 fails `criu check` on newer kernels (6.18: "vdso:
#                Unexpected rt vDSO area bounds"); it works in hack/vmtest's busybox guest
#                (Debian's 6.1 kernel), which sees the host's criu, runc, crun and hyperfine:
#                  hack/vmtest/run.sh hack/vmtest/bench-checkpoint.sh [RUNS [RUNTIMES...]]
#                runs `CASES=checkpoint hack/bench.sh` there (under TCG when the host has no
#                usable KVM: slow in absolute terms, the ratios are what count).
# Every runtime gets its own copy of one busybox bundle (hack/mkbundle.sh) and its own
# --root. Container IDs carry this script's pid (tb<pid>-...); every container is deleted.
#
# Output: a table on stdout; hack/bench-results.md (table, machine, versions) and
# hack/bench-results.svg (bar chart, drawn by hack/bench-report.py, no plotting library);
# the checkpoint case is a section of its own in hack/bench-results.md, with its own
# machine and date: a run of fewer CASES that has it (without --quick) replaces just that
# section there, and a full run that skips it keeps the one the file has;
# the raw hyperfine JSON, logs
# and strace summaries in target/bench/<date>-<pid>/. Peers are installed when missing:
# hyperfine, runc and crun from Debian; youki with `cargo install youki --locked` (cgroup
# v1/v2 and seccomp features, which the crate leaves out by default) into
# target/bench-tools/. If youki does not build, it is skipped with a note in the results.
# youki 0.7.0 is started through a tiny C wrapper that blocks SIGCHLD before it execs youki:
# without it, youki's `run` of a container that exits at once can hang forever (see where
# the wrapper is built). A full run takes 5-7 minutes on 2 CPUs (plus about 12 minutes the
# first time, to build youki).
#
# Cgroups: each container's linux.cgroupsPath is /tong-bench-<pid>/<runtime>-<case>, at the
# root of every hierarchy (never under the caller's own cgroup); every directory under
# /tong-bench-<pid> is removed at the end.
#
# Hybrid hosts and crun: crun 1.8 refuses a hybrid host (v1 controllers plus cgroup2 at
# /sys/fs/cgroup/unified) while any controller is available in cgroup2 ("cgroups in hybrid
# mode not supported, drop all controllers from cgroupv2"). On such hosts hugetlb is
# usually the only one left there, so this script binds hugetlb to a v1 hierarchy while it
# benchmarks (`mount -t cgroup -o hugetlb none DIR`, later `umount DIR`) and undoes it on
# every exit (trap). The whole script runs in a private mount namespace (it re-executes
# itself under `unshare --mount`) whose /sys/fs/cgroup is a tmpfs of its own with bind
# mounts of the host's hierarchies, and DIR is /sys/fs/cgroup/hugetlb there: only the
# benchmark sees the mount (other runtimes on the host do not create cgroups in it), and
# nobody outside can remove the mount point under it. The runtimes create hugetlb cgroups
# in that hierarchy; the cleanup removes them, waits until the kernel has freed them
# (/proc/cgroups counts only the root), and only then unmounts: a v1 hierarchy that still
# has a child, even a dying one, when it is unmounted stays bound with nothing mounted, and
# the host's cgroup2 loses hugetlb. The cleanup checks for that and repairs it (mounts the
# hierarchy again, empties it, unmounts it). If the script is killed with SIGKILL, the
# namespace and its mounts go away but hugetlb cgroups it left keep the hierarchy bound;
# then: `d=$(mktemp -d); mount -t cgroup -o hugetlb none $d; rmdir $d/tong-bench-*; umount $d`.
# shellcheck disable=SC2086 # $rt (a runtime and its --root) and $pids are word lists on purpose
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it starts containers)" >&2; exit 1; }

quick=0 rev=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--rev) rev=${2:?--rev needs a commit}; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

if [ -z "${TONG_BENCH_IN_NS:-}" ]; then
	export TONG_BENCH_IN_NS=1
	args=()
	[ "$quick" = 1 ] && args+=(--quick)
	[ -n "$rev" ] && args+=(--rev "$rev")
	exec unshare --mount --propagation private -- "$BASH" "$here/hack/bench.sh" "${args[@]}"
fi

if [ "$quick" = 1 ]; then
	: "${RUNS:=5}" "${ROUNDS:=1}" "${WARMUP:=1}" "${TP_RUNS:=1}" "${TP_N:=20}" "${RSS_RUNS:=3}" "${POD_RUNS:=3}" "${CKPT_RUNS:=2}"
fi
RUNS=${RUNS:-30} ROUNDS=${ROUNDS:-2} WARMUP=${WARMUP:-3}
TP_RUNS=${TP_RUNS:-5} TP_N=${TP_N:-100} RSS_RUNS=${RSS_RUNS:-10}
POD_RUNS=${POD_RUNS:-10}
CKPT_RUNS=${CKPT_RUNS:-5}
ALL_CASES="start scale pod memory checkpoint"
CASES=${CASES:-$ALL_CASES}
for c in $CASES; do
	[[ " $ALL_CASES " == *" $c "* ]] || { echo "bench: CASES: unknown case $c (cases: $ALL_CASES)" >&2; exit 2; }
done
has_case() { [[ " $CASES " == *" $1 "* ]]; }
partial=0
for c in $ALL_CASES; do has_case "$c" || partial=1; done
has_case pod || POD_RUNS=0
has_case checkpoint || CKPT_RUNS=0
RUNTIMES=${RUNTIMES:-tong crun runc youki}
YOUKI_VERSION=${YOUKI_VERSION:-0.7.0}
YOUKI_FEATURES=v1,v2,seccomp,systemd
STRACE=${STRACE:-1}
[ $((TP_N % 2)) = 0 ] || { echo "bench: TP_N must be even" >&2; exit 2; }

t_start=$(date +%s)
log() { printf '%s\n' "$*" >&2; }
tools=$here/target/bench-tools
mkdir -p "$tools"
RD=$here/target/bench/$(date -u +%Y%m%d-%H%M%S)-$$
mkdir -p "$RD/json" "$RD/rss"
: >"$RD/skipped"
skip() { # skip RUNTIME REASON...
	local r=$1
	shift
	log "bench: skipping $r: $*"
	printf '%s\t%s\n' "$r" "$*" >>"$RD/skipped"
}
meta() { printf '%s\t%s\n' "$1" "$2" >>"$RD/meta"; }
: >"$RD/meta"

# ------------------------------------------------------------------ peers
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v python3 >/dev/null || need+=(python3)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
if [ "$STRACE" = 1 ] && has_case memory && ! command -v strace >/dev/null; then need+=(strace); fi
for r in $RUNTIMES; do
	case $r in crun | runc) command -v "$r" >/dev/null || need+=("$r") ;; esac
done
if [ "$CKPT_RUNS" -gt 0 ] && ! command -v criu >/dev/null; then need+=(criu); fi
if [ ${#need[@]} -gt 0 ]; then
	log "bench: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
# shellcheck source=hack/env.sh
. "$here/hack/env.sh" # cargo on PATH; CARGO_BUILD_TARGET, TONG_BIN

declare -A BIN=() CMD=() # BIN: the executable; CMD: how to call it (words)
for r in $RUNTIMES; do
	case $r in
	tong) ;;
	crun | runc) BIN[$r]=$(command -v "$r") ;;
	youki)
		if [ ! -x "$tools/bin/youki" ] || [ "$(cat "$tools/youki.build" 2>/dev/null)" != "$YOUKI_VERSION $YOUKI_FEATURES" ]; then
			log "bench: building youki $YOUKI_VERSION with cargo install (takes minutes; log: $tools/youki-install.log)"
			# From /, without tong's target: youki is built as its own crate defaults it.
			if (cd / && env -u CARGO_BUILD_TARGET cargo install youki --locked --force --version "$YOUKI_VERSION" \
				--features "$YOUKI_FEATURES" --root "$tools") >"$tools/youki-install.log" 2>&1; then
				echo "$YOUKI_VERSION $YOUKI_FEATURES" >"$tools/youki.build"
			else
				skip youki "cargo install youki failed: $(grep -m1 -E '^error' "$tools/youki-install.log" || tail -n1 "$tools/youki-install.log")"
				continue
			fi
		fi
		BIN[youki]=$tools/bin/youki
		# youki 0.7.0's foreground `run` blocks SIGCHLD only after it started the
		# container: when /bin/true exits before that, the signal is discarded and
		# youki waits forever (sigtimedwait, a zombie child). Started with SIGCHLD
		# already blocked (the mask survives execve), the signal stays pending.
		if [ ! -x "$tools/sigchld-blocked" ]; then
			printf '%s\n' '#include <signal.h>' '#include <stdio.h>' '#include <unistd.h>' \
				'int main(int argc, char **argv) {' \
				'	sigset_t s;' \
				'	sigemptyset(&s);' \
				'	sigaddset(&s, SIGCHLD);' \
				'	if (argc < 2 || sigprocmask(SIG_BLOCK, &s, NULL)) return 127;' \
				'	execv(argv[1], argv + 1);' \
				'	perror(argv[1]);' \
				'	return 127;' \
				'}' >"$tools/sigchld-blocked.c"
			cc -O2 -static -o "$tools/sigchld-blocked" "$tools/sigchld-blocked.c" 2>/dev/null ||
				cc -O2 -o "$tools/sigchld-blocked" "$tools/sigchld-blocked.c"
		fi
		CMD[youki]="$tools/sigchld-blocked $tools/bin/youki"
		;;
	*) skip "$r" "unknown runtime" ;;
	esac
done

# ------------------------------------------------------------------ tong
tong_label=
if [ -n "${TONG:-}" ]; then
	tong_label=${TONG_LABEL:-$TONG}
elif [ -n "$rev" ]; then
	commit=$(git rev-parse --verify "$rev^{commit}")
	src=$tools/tong-src
	rm -rf "$src"
	mkdir -p "$src"
	git archive "$commit" | tar -x -C "$src"
	log "bench: building tong at ${commit:0:12} (release)"
	(cd "$src" && CARGO_TARGET_DIR=$tools/tong-target cargo build --release --quiet)
	TONG=$tools/tong-target/$CARGO_BUILD_TARGET/release/tong
	tong_label="commit ${commit:0:12}"
else
	log "bench: building tong (release) from the working tree"
	cargo build --release --quiet
	TONG=$TONG_BIN
	tong_label="commit $(git describe --always --dirty --abbrev=12)"
fi
case " $RUNTIMES " in *" tong "*) BIN[tong]=$TONG ;; esac
for r in "${!BIN[@]}"; do CMD[$r]=${CMD[$r]:-${BIN[$r]}}; done

# ------------------------------------------------------------------ cgroups
ID=tb$$
CG=tong-bench-$$
cg_dirs() { # this run's cgroup directories, deepest first
	local d
	for d in /sys/fs/cgroup/"$CG" /sys/fs/cgroup/*/"$CG"; do
		[ -d "$d" ] && find "$d" -depth -type d
	done
	return 0
}
cgroup_mode() {
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		echo unified
	elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
		echo hybrid
	else
		echo legacy
	fi
}
hugetlb_field() { awk -v f="$1" '$1 == "hugetlb" { print $f }' /proc/cgroups; } # 2: hierarchy, 3: cgroups
HUGETLB_DIR=''
private_cgroup_tree() {
	# /sys/fs/cgroup of this mount namespace becomes a tmpfs of its own that holds bind
	# mounts of the host's hierarchies: a directory made there for hugetlb exists in this
	# namespace only, so nothing outside (say, another session binding and unbinding hugetlb
	# at the same well-known path) can remove it, which would detach the mount under us.
	local old e
	old=$(mktemp -d /tmp/tong-bench-cgroup.XXXXXX)
	mount --rbind /sys/fs/cgroup "$old"
	mount -t tmpfs -o mode=755 tong-bench-cgroup /sys/fs/cgroup
	for e in "$old"/*; do
		if [ -L "$e" ]; then
			cp -P "$e" /sys/fs/cgroup/
		elif mountpoint -q "$e"; then
			mkdir "/sys/fs/cgroup/${e##*/}"
			mount --bind "$e" "/sys/fs/cgroup/${e##*/}"
		fi
	done
	umount -l "$old"
	rmdir "$old"
}
bind_hugetlb() {
	[ "$(cgroup_mode)" = hybrid ] || return 0
	grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers || return 0
	private_cgroup_tree
	mkdir /sys/fs/cgroup/hugetlb
	if mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb; then
		HUGETLB_DIR=/sys/fs/cgroup/hugetlb
		log "bench: hybrid cgroups: hugetlb bound to v1 at $HUGETLB_DIR (in this mount namespace) while benchmarking (crun needs it)"
	else
		log "bench: could not bind hugetlb to v1; crun will refuse this hybrid host"
	fi
}
unbind_hugetlb() {
	[ -n "$HUGETLB_DIR" ] || return 0
	local i others t=''
	if ! mountpoint -q "$HUGETLB_DIR"; then
		# Detached under us after all: reach the hierarchy again to empty it.
		log "bench: WARNING: the hugetlb mount at $HUGETLB_DIR went away; mounting it again to clean up"
		t=$(mktemp -d /tmp/tong-bench-hugetlb.XXXXXX)
		mount -t cgroup -o hugetlb none "$t" || { rmdir "$t"; HUGETLB_DIR=''; return 0; }
		HUGETLB_DIR=$t
	fi
	if [ -d "$HUGETLB_DIR/$CG" ]; then
		for i in $(seq 50); do
			find "$HUGETLB_DIR/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$HUGETLB_DIR/$CG" ] || break
			sleep 0.1
		done
	fi
	others=$(find "$HUGETLB_DIR" -mindepth 1 -type d)
	if [ -n "$others" ]; then
		log "bench: WARNING: cgroups in the hugetlb hierarchy that this run did not remove, left alone: $others"
	else
		# Wait for the kernel to free the removed (dying) cgroups: unmounting a hierarchy
		# with a child left keeps it bound.
		for i in $(seq 100); do
			[ "$(hugetlb_field 3)" = 1 ] && break
			sleep 0.1
		done
	fi
	umount "$HUGETLB_DIR"
	[ -n "$t" ] && rmdir "$t"
	HUGETLB_DIR=''
	[ -n "$others" ] && return 0
	for i in 1 2 3; do
		for _ in $(seq 30); do
			[ "$(hugetlb_field 2)" = 0 ] && return 0
			sleep 0.1
		done
		# Still bound: mount the (empty) hierarchy once more and unmount it again.
		t=$(mktemp -d /tmp/tong-bench-hugetlb.XXXXXX)
		mount -t cgroup -o hugetlb none "$t" && sleep 0.5 && umount "$t"
		rmdir "$t"
	done
	log "bench: WARNING: hugetlb is still bound to a v1 hierarchy (/proc/cgroups: $(grep hugetlb /proc/cgroups))"
}

# ------------------------------------------------------------------ cleanup
W=
cleanup() {
	set +e
	local r root id d pids i left
	for r in "${!BIN[@]}"; do
		root=$W/$r/root
		[ -n "$W" ] && [ -d "$root" ] || continue
		for id in "$root/$ID"-*; do
			[ -e "$id" ] && "${BIN[$r]}" --root "$root" delete -f "${id##*/}" >/dev/null 2>&1
		done
	done
	# Anything still in this run's cgroups (a runtime that failed to kill) goes too.
	for d in $(cg_dirs); do
		pids=$(cat "$d/cgroup.procs" 2>/dev/null)
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	done
	for i in $(seq 50); do
		for d in $(cg_dirs); do rmdir "$d" 2>/dev/null; done
		[ -z "$(cg_dirs)" ] && break
		sleep 0.1
	done
	left=$(cg_dirs)
	[ -n "$left" ] && log "bench: WARNING: could not remove $left"
	unbind_hugetlb
	[ -n "$W" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind_hugetlb
meta cgroups "$(cgroup_mode)$([ -n "$HUGETLB_DIR" ] && echo ', hugetlb bound to v1 while benchmarking')"
if [ -n "${BENCH_WHERE:-}" ]; then meta where "$BENCH_WHERE"; fi

# ------------------------------------------------------------------ bundles
W=$(mktemp -d /tmp/tong-bench.XXXXXX)
log "bench: bundles in $W, results in $RD"
TONG=$TONG CGROUPS_PATH=/$CG/base hack/mkbundle.sh "$W/base" /bin/true >/dev/null
mkbundles() { # mkbundles RUNTIME: $W/R/{run,sc,life,exec,tp0,tp1,ckpt}/config.json over $W/R/rootfs
	python3 - "$W" "$1" "$CG" "$here/tests/data/podman-seccomp.json" <<'PY'
import copy, json, os, sys
w, r, cg, seccomp = sys.argv[1:]
with open(os.path.join(w, "base", "config.json")) as f:
    base = json.load(f)
base["root"]["path"] = os.path.join(w, r, "rootfs")
res = base["linux"].setdefault("resources", {})
res["memory"] = {"limit": 256 << 20}
res["pids"] = {"limit": 128}
with open(seccomp) as f:
    profile = json.load(f)
for name in ["run", "sc", "life", "exec", "tp0", "tp1", "ckpt"]:
    c = copy.deepcopy(base)
    c["linux"]["cgroupsPath"] = f"/{cg}/{r}-{name}"
    if name == "exec":
        c["process"]["args"] = ["sleep", "1000000"]
    if name == "ckpt":
        c["process"]["args"] = ["sh", "-c", "i=0; while :; do i=$((i+1)); sleep 1; done"]
    if name == "sc":
        c["linux"]["seccomp"] = profile
    os.makedirs(os.path.join(w, r, name))
    with open(os.path.join(w, r, name, "config.json"), "w") as f:
        json.dump(c, f, indent="\t")
PY
}

# ctl.sh ROOT BUNDLE ID STATE RUNTIME...: untimed, for --prepare: the container ID absent,
# created or stopped (created, started, /bin/true exited).
cat >"$W/ctl.sh" <<'SH'
#!/bin/sh
root=$1 bundle=$2 id=$3 want=$4
shift 4
"$@" --root "$root" delete -f "$id" >/dev/null 2>&1
[ "$want" = absent ] && exit 0
"$@" --root "$root" create -b "$bundle" "$id" </dev/null >/dev/null || exit 1
[ "$want" = created ] && exit 0
"$@" --root "$root" start "$id" || exit 1
i=0
while :; do
	case $("$@" --root "$root" state "$id" 2>/dev/null) in *'"stopped"'*) exit 0 ;; esac
	i=$((i + 1))
	[ $i -gt 1000 ] && { echo "ctl.sh: $id did not stop" >&2; exit 1; }
	sleep 0.01
done
SH
# ck.sh ROOT BUNDLE ID IMG RUNTIME...: untimed, for --prepare of the checkpoint case: the
# container ID running afresh and IMG absent. The container's stdin is a pipe whose writer
# is gone, its stdout and stderr a pipe to a `cat` into IMG.out, which ends when the
# container does: CRIU dumps anonymous pipes (and the restore gives the restoring command's
# stdio in their place), not files from outside the container's mounts (the host's
# /dev/null, a fifo).
cat >"$W/ck.sh" <<'SH'
#!/usr/bin/env bash
root=$1 bundle=$2 id=$3 img=$4
shift 4
"$@" --root "$root" delete -f "$id" >/dev/null 2>&1
rm -rf "$img"
if ! "$@" --root "$root" run -d -b "$bundle" "$id" < <(:) > >(exec cat >"$img.out") 2>&1; then
	sleep 0.5
	cat "$img.out" >&2
	exit 1
fi
sleep 1 # the shell in its loop
SH
# tp.sh ROOT BUNDLE0 BUNDLE1 PREFIX N RUNTIME...: N containers `run` of /bin/true, two at a time.
cat >"$W/tp.sh" <<'SH'
#!/bin/sh
root=$1 b0=$2 b1=$3 p=$4 n=$5
shift 5
loop() {
	i=0
	while [ $i -lt $((n / 2)) ]; do
		"$@" --root "$root" run -b "$b" "$p-$s-$i" </dev/null || return 1
		i=$((i + 1))
	done
}
b=$b0 s=a loop "$@" & a=$!
b=$b1 s=b loop "$@" & b=$!
wait $a; ra=$?
wait $b; rb=$?
[ $ra = 0 ] && [ $rb = 0 ]
SH

declare -a RT=()
for r in $RUNTIMES; do
	[ -n "${BIN[$r]:-}" ] || continue
	mkdir -p "$W/$r/root"
	cp -a "$W/base/rootfs" "$W/$r/rootfs"
	mkbundles "$r"
	rt="${CMD[$r]} --root $W/$r/root" # the runtime as words (no path holds a space)
	if ! out=$($rt run -b "$W/$r/run" "$ID-$r-smoke" </dev/null 2>&1); then
		$rt delete -f "$ID-$r-smoke" >/dev/null 2>&1
		skip "$r" "\`run\` fails here: $(echo "$out" | grep -v '^\s*$' | head -n 2 | tr '\n' ' ')"
		continue
	fi
	if ! out=$($rt run -b "$W/$r/sc" "$ID-$r-smoke" </dev/null 2>&1); then
		$rt delete -f "$ID-$r-smoke" >/dev/null 2>&1
		skip "$r" "\`run\` with the seccomp profile fails here: $(echo "$out" | head -n 2 | tr '\n' ' ')"
		continue
	fi
	RT+=("$r")
	meta "version $r" "$("${BIN[$r]}" --version 2>/dev/null | sed -n 1p)"
	meta "path $r" "${BIN[$r]}"
done
[ ${#RT[@]} -gt 0 ] || { log "bench: no runtime left to measure"; exit 1; }
meta tong "$tong_label"
if [ "$partial" = 1 ]; then meta cases "$CASES"; fi

# ------------------------------------------------------------------ timing
hf() { # hf CASE RUNTIME ROUND [hyperfine args...]
	local c=$1 r=$2 round=$3
	shift 3
	local json=$RD/json/$c-$r-$round.json
	hyperfine -N --style basic --export-json "$json" "$@" >>"$RD/hyperfine.log" 2>&1 ||
		{ log "bench: hyperfine failed for $c/$r (see $RD/hyperfine.log)"; tail -n 5 "$RD/hyperfine.log" >&2; exit 1; }
	python3 - "$json" "$c" "$r" "$round" <<'PY' >&2
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
parts = " + ".join(f"{statistics.median(x['times']) * 1e3:.2f}" for x in res)
print(f"  {sys.argv[2]:<12} {sys.argv[3]:<6} round {sys.argv[4]}: median {parts} ms")
PY
}

if [ "${WAIT_IDLE:-0}" -gt 0 ]; then
	log "bench: waiting up to $WAIT_IDLE s for the 1-minute load average to fall below 1"
	idle_end=$(($(date +%s) + WAIT_IDLE))
	while awk '{ exit !($1 >= 1) }' /proc/loadavg && [ "$(date +%s)" -lt "$idle_end" ]; do sleep 5; done
fi
if awk -v n="$(nproc)" '{ exit !($1 >= n / 2) }' /proc/loadavg; then
	log "bench: WARNING: the host is busy (load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs); expect noisy numbers"
fi
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
rounds=$ROUNDS
has_case start || rounds=0
for round in $(seq "$rounds"); do
	order=("${RT[@]}")
	if [ $((round % 2)) = 0 ]; then # every other round the other way round
		order=()
		for ((i = ${#RT[@]} - 1; i >= 0; i--)); do order+=("${RT[$i]}"); done
	fi
	log "bench: round $round/$ROUNDS (${order[*]})"
	hf run floor "$round" --warmup "$WARMUP" --runs "$RUNS" -n floor "unshare -fmpnui /bin/true"
	for r in "${order[@]}"; do
		root=$W/$r/root b=$W/$r
		rt="${CMD[$r]} --root $root"
		hf run "$r" "$round" --warmup "$WARMUP" --runs "$RUNS" -n "$r run" "$rt run -b $b/run $ID-$r-run"
		hf run+seccomp "$r" "$round" --warmup "$WARMUP" --runs "$RUNS" -n "$r run+seccomp" "$rt run -b $b/sc $ID-$r-sc"
		# Cold: tong's compiled-program cache (<root>/seccomp@cache) removed before each
		# run (untimed); the others keep no cache, so for them it is the same case again.
		hf run+seccomp-cold "$r" "$round" --warmup "$WARMUP" --runs "$RUNS" --prepare "rm -rf $root/seccomp@cache" \
			-n "$r run+seccomp-cold" "$rt run -b $b/sc $ID-$r-sc"
		life="sh $W/ctl.sh $root $b/life $ID-$r-life"
		hf lifecycle "$r" "$round" --warmup "$WARMUP" --runs "$RUNS" \
			--prepare "$life absent ${CMD[$r]}" -n "$r create" "$rt create -b $b/life $ID-$r-life" \
			--prepare "$life created ${CMD[$r]}" -n "$r start" "$rt start $ID-$r-life" \
			--prepare "$life stopped ${CMD[$r]}" -n "$r delete" "$rt delete $ID-$r-life"
		$rt delete -f "$ID-$r-life" >/dev/null 2>&1 || true
		$rt create -b "$b/exec" "$ID-$r-exec" </dev/null >/dev/null 2>&1
		$rt start "$ID-$r-exec"
		hf exec "$r" "$round" --warmup "$WARMUP" --runs "$RUNS" -n "$r exec" "$rt exec $ID-$r-exec /bin/true"
		$rt delete -f "$ID-$r-exec" >/dev/null
		hf throughput "$r" "$round" --runs "$TP_RUNS" -n "$r ${TP_N}x run" \
			"sh $W/tp.sh $root $b/tp0 $b/tp1 $ID-$r-tp $TP_N ${CMD[$r]}"
	done
done

# ------------------------------------------------------------------ scale: list and state
# The containers stay alive from one N to the next; each runtime adds its own up to N, then
# list and state are timed, the runtimes taking turns.
SCALE=${SCALE-1 100 400}
has_case scale || SCALE=
declare -A alive=()
for n in $SCALE; do
	log "bench: scale, $n containers alive"
	for r in "${RT[@]}"; do
		rt="${CMD[$r]} --root $W/$r/root"
		i=${alive[$r]:-0}
		while [ "$i" -lt "$n" ]; do
			d=$W/$r/scale/$i
			mkdir -p "$d"
			sed -e "s|\"cgroupsPath\": *\"[^\"]*\"|\"cgroupsPath\": \"/$CG/$r-s$i\"|" \
				-e 's|"/bin/true"|"sleep", "1000000"|' "$W/$r/run/config.json" >"$d/config.json"
			$rt run -d -b "$d" "$ID-$r-s$i" </dev/null >/dev/null 2>&1 ||
				{ log "bench: $r could not start container $i of the scale case"; exit 1; }
			i=$((i + 1))
		done
		alive[$r]=$i
		hf "list@$n" "$r" 1 --warmup "$WARMUP" --runs "$RUNS" -n "$r list" "$rt list"
		hf "state@$n" "$r" 1 --warmup "$WARMUP" --runs "$RUNS" -n "$r state" "$rt state $ID-$r-s0"
	done
done
for r in "${RT[@]}"; do
	rt="${CMD[$r]} --root $W/$r/root"
	for ((i = 0; i < ${alive[$r]:-0}; i++)); do $rt delete -f "$ID-$r-s$i" >/dev/null 2>&1; done
done
# ------------------------------------------------------------------ pod: through containerd's CRI
# hack/e2e/cri.sh's bench step (cri-e2e bench): a private containerd with its CRI plugin and a
# runtime handler for each of tong, crun and runc here, POD_RUNS pod starts and teardowns each,
# the handlers taking turns. containerd, its shims and crun inherit this script's mount
# namespace, so crun finds hugetlb bound on a hybrid host there too. POD_RUNS=0: no pod case.
if [ "$POD_RUNS" -gt 0 ]; then
	hs=()
	for r in tong crun runc; do [[ " ${RT[*]} " == *" $r "* ]] && hs+=("$r"); done
	log "bench: pod start through containerd's CRI (${hs[*]}), $POD_RUNS runs each"
	if TONG=${BIN[tong]:-} RUNTIME=tong E2E_STEPS=bench CRI_BENCH_OUT=$RD/pod.json \
		CRI_BENCH_RUNS=$POD_RUNS CRI_BENCH_HANDLERS="${hs[*]}" \
		bash "$here/hack/e2e/cri.sh" >"$RD/pod.log" 2>&1; then
		cat "$RD/pod.txt" >&2
		meta containerd "$(containerd --version | awk '{ print $3 }')"
	else
		log "bench: the pod case failed, see $RD/pod.log"
		rm -f "$RD/pod.json"
		skip pod "hack/e2e/cri.sh's bench step failed (see $RD/pod.log)"
	fi
fi
meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ memory, size, syscalls
if has_case memory; then
	log "bench: peak RSS ($RSS_RUNS runs of \`run\` each), binary sizes"
	for r in "${RT[@]}"; do
		rt="${CMD[$r]} --root $W/$r/root"
		for i in $(seq "$RSS_RUNS"); do
			/usr/bin/time -v -o "$RD/rss/$r-$i.txt" $rt run -b "$W/$r/run" "$ID-$r-rss" </dev/null
		done
		exe=$(readlink -f "${BIN[$r]}")
		libs=$(ldd "$exe" 2>/dev/null | grep -c '=>' || true)
		meta "size $r" "$(stat -c %s "$exe") $libs"
		if [ "$STRACE" = 1 ]; then
			strace -f -c -o "$RD/strace-$r.txt" $rt run -b "$W/$r/run" "$ID-$r-strace" </dev/null
		fi
	done
fi

# ------------------------------------------------------------------ checkpoint and restore
# Where `criu check` passes: one untimed cycle per runtime, then CKPT_RUNS timed cycles, the
# runtimes taking turns (every other cycle the other way round). A cycle is one hyperfine
# call, one run of each command: ck.sh (--prepare, untimed) starts the container afresh,
# `checkpoint` dumps it into IMG (the container is gone after it, as with runc), the second
# --prepare keeps CRIU's dump.log, `restore -d` brings it back from IMG; then restore.log is
# kept and the container deleted. A runtime whose checkpoint or restore fails is n/a, with why.
first_lines() { grep -v '^\s*$' "$1" | head -n 2 | tr '\n' ' ' | sed 's/ *$//'; }
criu_error() { # criu_error LOG: CRIU's first error line in LOG, if any
	local e
	e=$(grep -m1 -E 'Error|error' "$1" 2>/dev/null | sed 's/^([0-9.]*) //') || return 0
	[ -n "$e" ] || return 0
	printf '; CRIU (%s): %s' "${1##*/}" "$e"
}
if [ "$CKPT_RUNS" -gt 0 ]; then
	ck=()
	if ! command -v criu >/dev/null; then
		skip checkpoint "criu is not installed"
	# (its log named here: a log-file in /etc/criu/default.conf would put it in the cwd)
	elif ! out=$(criu check --log-file "$RD/criu-check.log" 2>&1); then
		skip checkpoint "\`criu check\` fails on this kernel ($(uname -r)): $(cat "$RD/criu-check.log" - <<<"$out" | grep -m1 -E 'Error|error' | sed 's/^([0-9.]*) //') (hack/vmtest/run.sh hack/vmtest/bench-checkpoint.sh runs the case in a guest)"
	else
		meta criu "$(criu --version | sed -n 's/^Version: //p')"
		mkdir -p "$RD/criu"
		log "bench: checkpoint and restore (CRIU $(criu --version | sed -n 's/^Version: //p')), one untimed cycle then $CKPT_RUNS each"
		for r in "${RT[@]}"; do
			root=$W/$r/root b=$W/$r/ckpt img=$W/$r/ckpt-img id=$ID-$r-ck
			rt="${CMD[$r]} --root $root"
			err=$W/$r/ckpt.err
			if ! bash "$W/ck.sh" "$root" "$b" "$id" "$img" ${CMD[$r]} 2>"$err"; then
				skip "checkpoint $r" "\`$r run -d\` of the container fails: $(first_lines "$err")"
			elif ! $rt checkpoint --image-path "$img" "$id" </dev/null >/dev/null 2>"$err"; then
				why="\`$r checkpoint --image-path DIR ID\` fails: $(first_lines "$err")$(criu_error "$img/dump.log")"
				if [ "$r" = crun ] && ! "${BIN[$r]}" --version | grep -q '+CRIU'; then
					why+=" (this crun is built without CRIU: \`crun --version\` lists no +CRIU)"
				fi
				skip "checkpoint $r" "$why"
			elif ! $rt restore -d -b "$b" --image-path "$img" "$id" </dev/null >/dev/null 2>"$err"; then
				skip "checkpoint $r" "\`$r restore -d --bundle B --image-path DIR ID\` fails: $(first_lines "$err")$(criu_error "$img/restore.log")"
			else
				ck+=("$r")
			fi
			$rt delete -f "$id" >/dev/null 2>&1 || true
		done
		for i in $(seq "$CKPT_RUNS"); do
			# The report's reference, two runs per cycle: starting CRIU's executable, which
			# each of these commands pays twice (tong and runc start a `criu swrk` to ask
			# CRIU's version, then one for the request, whose log begins once it has started).
			if [ ${#ck[@]} -gt 0 ]; then
				hf criu-start criu "$i" --runs 2 -n "criu --version" "criu --version"
			fi
			order=("${ck[@]}")
			if [ $((i % 2)) = 0 ]; then
				order=()
				for ((j = ${#ck[@]} - 1; j >= 0; j--)); do order+=("${ck[$j]}"); done
			fi
			for r in "${order[@]}"; do
				root=$W/$r/root b=$W/$r/ckpt img=$W/$r/ckpt-img id=$ID-$r-ck
				rt="${CMD[$r]} --root $root"
				# hf exits on a failure: in a subshell, that ends this runtime's case only.
				if ! (hf ckpt "$r" "$i" --runs 1 \
					--prepare "bash $W/ck.sh $root $b $id $img ${CMD[$r]}" \
					-n "$r checkpoint" "$rt checkpoint --image-path $img $id" \
					--prepare "cp $img/dump.log $RD/criu/$r-$i-dump.log" \
					-n "$r restore" "$rt restore -d -b $b --image-path $img $id"); then
					skip "checkpoint $r" "cycle $i failed (see $RD/hyperfine.log)$(criu_error "$img/dump.log")$(criu_error "$img/restore.log")"
					rm -f "$RD"/json/ckpt-"$r"-*.json
					for j in "${!ck[@]}"; do [ "${ck[$j]}" = "$r" ] && unset 'ck[j]'; done
					ck=("${ck[@]}")
				fi
				cp "$img/restore.log" "$RD/criu/$r-$i-restore.log" 2>/dev/null || true
				$rt delete -f "$id" >/dev/null 2>&1 || true
			done
		done
		meta ckpt_settings "hyperfine $(hyperfine --version | cut -d' ' -f2) -N, one untimed cycle + $CKPT_RUNS cycles per runtime, taking turns"
	fi
fi
meta duration "$(($(date +%s) - t_start))"
meta machine "$(uname -r); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
meta settings "hyperfine $(hyperfine --version | cut -d' ' -f2) -N, $WARMUP warm-up + $RUNS runs x $ROUNDS rounds per case and runtime; throughput $TP_RUNS x $ROUNDS runs of $TP_N containers; RSS $RSS_RUNS runs"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"

# ------------------------------------------------------------------ report
if [ "$quick" = 1 ] || [ "$partial" = 1 ]; then
	md=$RD/bench-results.md svg=$RD/bench-results.svg
else
	md=$here/hack/bench-results.md svg=$here/hack/bench-results.svg
fi
splice=() # a run of fewer cases: its checkpoint section replaces the one in hack/
if [ "$quick" = 0 ] && [ "$partial" = 1 ] && compgen -G "$RD/json/ckpt-*.json" >/dev/null; then
	splice=(--splice "$here/hack/bench-results.md")
fi
python3 "$here/hack/bench-report.py" "$RD" "$md" "$svg" "${splice[@]}"
log "bench: done in $(($(date +%s) - t_start)) s; $md, $svg; raw data in $RD"
