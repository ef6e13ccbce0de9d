#!/usr/bin/env bash
# Usage: hack/vmtest/engines.sh
#
# The engines e2e (hack/e2e/{docker,containerd,podman,cri}.sh) with the engines' systemd
# defaults (E2E_CGROUP_DRIVER=systemd: dockerd's native.cgroupdriver=systemd, ctr's
# --runc-systemd-cgroup, podman's systemd cgroup manager, CRI's SystemdCgroup = true, what
# kubeadm configures) in the engines guest of hack/vmtest/run.sh (Debian bookworm booting
# systemd, pure cgroup v2, the engines in its image), booted once: each engine script for
# each runtime in E2E_RUNTIMES, in turn. Prints a pass/fail summary per engine and runtime and
# what each part cost (seconds); exits 1 when any script failed or the guest kept something
# of theirs, run.sh's 124/125 when the guest timed out or did not come up.
#
# Environment:
#   E2E_RUNTIMES="tong"     the runtimes (default tong; "tong runc" adds the reference run)
#   E2E_ENGINES="docker containerd podman"   add cri for hack/e2e/cri.sh (containerd's CRI
#                           plugin); its client (cargo) and pause binary (gcc) are built here
#                           on the host first, into target/cri, as the guest has neither
#   TONG=PATH               the tong binary (default: the checkout's release build,
#                           hack/env.sh's TONG_BIN); copied onto the guest's disk
#   E2E_STEPS               the steps to run (hack/e2e/README.md); "cgroup": those about
#                           cgroups and units, what fits CI (the whole of docker.sh takes
#                           7 to 13 min per runtime under TCG)
#   E2E_KNOWN_FAILURES, E2E_VERBOSE, E2E_CMD_TIMEOUT   passed to every script (hack/e2e/README.md)
#   VMTEST_TIMEOUT          the whole run, boot included (default 1800 s per runtime); the other
#                           VMTEST_* variables of run.sh apply too (VMTEST_GUEST is engines)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "$here/../.." && pwd)
E2E_RUNTIMES=${E2E_RUNTIMES:-tong}
E2E_ENGINES=${E2E_ENGINES:-docker containerd podman}

# ------------------------------------------------------------ guest side

# Runs in the guest (run.sh's job, from the checkout): every engine with every runtime.
guest() {
	local t_all=$SECONDS t_img img r e t0 rc line secs bin=/usr/local/libexec/tong-e2e/tong out tl pid
	local rows=() failed=0 left
	echo "engines: guest $(uname -r), $(systemctl --version | head -n 1), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
	echo "engines: $(dockerd --version); containerd $(containerd --version | awk '{ print $3 }'); $(podman --version); $(conmon --version | head -n 1); runc $(runc --version | awk 'NR == 1 { print $3 }')"
	# tong from the guest's disk, in a directory of its own (not over 9p at each of the
	# engines' many runtime calls; its name stays tong: podman registers it by that name).
	if [[ " $E2E_RUNTIMES " == *" tong "* ]]; then
		[ -x "$E2E_GUEST_TONG" ] || { echo "engines: no tong at $E2E_GUEST_TONG in the guest" >&2; exit 1; }
		mkdir -p "${bin%/*}"
		cp "$E2E_GUEST_TONG" "$bin"
		echo "engines: tong: $E2E_GUEST_TONG (copied to $bin): $("$bin" --version | head -n 1)"
	fi
	# As from a login shell, not from the service run.sh's job is: podman puts conmon in a
	# scope of its own only when $INVOCATION_ID does not say it runs in a service.
	unset INVOCATION_ID JOURNAL_STREAM
	# tun as on most hosts: the engines' default device rules name /dev/net/tun, and runc's
	# systemd driver warns in its JSON log when the device does not exist (podman then cannot
	# read that log as one JSON object).
	modprobe -q tun || echo "engines: modprobe tun failed"
	# cri.sh's client and pause image, built on the host; the CNI plugins and ip, from the image.
	if [[ " $E2E_ENGINES " == *" cri "* ]]; then
		for f in "$CRI_E2E_BIN" "$CRI_PAUSE_BIN" /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback "$(command -v ip)" "$(command -v ctr)"; do
			[ -x "$f" ] || { echo "engines: cri: no ${f:-ip or ctr} in the guest" >&2; exit 1; }
		done
	fi
	# The test image's rootfs, made once for every run (hack/e2e/lib.sh: e2e_rootfs_tar).
	t_img=$SECONDS
	img=$(mktemp -d /tmp/engines-rootfs.XXXXXX)/rootfs.tar
	(
		unset E2E_ROOTFS_TAR
		E2E_TMP=${img%/*}
		RUNTIME_BIN=$bin
		[ -x "$bin" ] || RUNTIME_BIN=$(command -v runc)
		# shellcheck source=hack/e2e/lib.sh
		. hack/e2e/lib.sh
		e2e_rootfs_tar "$img"
	) || { echo "engines: cannot make the test image's rootfs" >&2; exit 1; }
	export E2E_ROOTFS_TAR=$img
	echo "engines: the test image's rootfs made in $((SECONDS - t_img))s"
	for r in $E2E_RUNTIMES; do
		for e in $E2E_ENGINES; do
			echo
			echo "==== engines: $e with RUNTIME=$r, E2E_CGROUP_DRIVER=systemd"
			out=$(mktemp /tmp/engines-out.XXXXXX)
			t0=$SECONDS
			# To a file, followed by tail: a pipe would wait for anything left holding it.
			RUNTIME=$r TONG=$bin E2E_CGROUP_DRIVER=systemd bash "hack/e2e/$e.sh" >"$out" 2>&1 </dev/null &
			pid=$!
			tail -n +1 -f --pid="$pid" "$out" &
			tl=$!
			rc=0
			wait "$pid" || rc=$?
			wait "$tl" 2>/dev/null
			secs=$((SECONDS - t0))
			line=$(grep -E "^[a-z]+-e2e: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$" "$out" | tail -n 1)
			rm -f "$out"
			[ "$rc" = 0 ] || failed=1
			rows+=("$(printf '%-6s %-11s %-5s %5ss  %s' "$r" "$e" "$([ "$rc" = 0 ] && echo PASS || echo "FAIL")" "$secs" "${line:-(no summary line: exit $rc)}")")
		done
	done
	# Nothing of the runs anywhere in the guest.
	left=$(
		systemctl list-units --all --plain --no-legend --no-pager 'docker-*.scope' 'libpod-*.scope' 'cri-containerd-*.scope' 'tong-e2e-*' 'tong_e2e_*' 2>/dev/null
		find /sys/fs/cgroup -mindepth 1 -type d \( -name 'docker-*.scope' -o -name 'libpod-*.scope' -o -name 'cri-containerd-*.scope' -o -name 'tong-e2e-*' -o -name 'tong_e2e_*' \) 2>/dev/null
		ls -d /tmp/tong-e2e-* /run/docker /run/containerd /var/run/netns/cni-* 2>/dev/null
		find /var/lib/cni -name '*tong-e2e-cri-*' 2>/dev/null
		ip -o link show type veth 2>/dev/null
		ip -o link show type bridge 2>/dev/null | grep -E '^[0-9]+: tongcri'
		pgrep -a -f '^[^ ]*(dockerd|containerd|conmon|containerd-shim-runc-v2)( |$)'
	)
	echo
	echo "==== engines: summary (systemd driver; seconds under $(systemd-detect-virt 2>/dev/null || echo '?'))"
	printf '%s\n' "${rows[@]}"
	if [ -n "$left" ]; then
		echo "engines: LEFT in the guest after the runs:"
		printf '%s\n' "$left" | sed 's/^/  /'
		failed=1
	else
		echo "engines: nothing left in the guest (units, cgroups, temp dirs, daemons, netns, veths, bridges)"
	fi
	rm -rf "${E2E_ROOTFS_TAR%/*}"
	echo "engines: guest job ${E2E_RUNTIMES// /+} took $((SECONDS - t_all))s"
	echo "engines-guest-seconds=$((SECONDS - t_all))"
	exit "$failed"
}

if [ "${1:-}" = --guest ]; then
	guest
fi

# ------------------------------------------------------------ host side

if [ -z "${TONG:-}" ]; then
	# shellcheck source=hack/env.sh
	. "$checkout/hack/env.sh"
	TONG=$TONG_BIN
fi
case $TONG in /*) ;; *) TONG=$PWD/$TONG ;; esac
[ -x "$TONG" ] || { echo "engines: $TONG is not executable (build tong: cargo build --release, or set TONG)" >&2; exit 1; }
# The guest shares the checkout at its own path and sees the host's / at /mnt/host.
case $TONG in
"$checkout"/*) E2E_GUEST_TONG=$TONG ;;
*) E2E_GUEST_TONG=/mnt/host$TONG ;;
esac
# cri.sh's client and pause binary: built here, used prebuilt in the guest (the checkout is
# shared at its own path).
CRI_E2E_BIN='' CRI_PAUSE_BIN=''
if [[ " $E2E_ENGINES " == *" cri "* ]]; then
	command -v protoc >/dev/null || { echo "engines: cri: protoc is needed to build hack/cri (apt-get install protobuf-compiler)" >&2; exit 1; }
	command -v gcc >/dev/null || { echo "engines: cri: gcc is needed to build hack/cri/pause.c" >&2; exit 1; }
	# shellcheck source=hack/env.sh
	. "$checkout/hack/env.sh"
	(cd "$checkout" && CARGO_TARGET_DIR="$checkout/target/cri" cargo build --release --quiet --manifest-path hack/cri/Cargo.toml) ||
		{ echo "engines: cri: cannot build hack/cri" >&2; exit 1; }
	CRI_E2E_BIN=$checkout/target/cri/$CARGO_BUILD_TARGET/release/cri-e2e
	CRI_PAUSE_BIN=$checkout/target/cri/pause
	if [ ! "$CRI_PAUSE_BIN" -nt "$checkout/hack/cri/pause.c" ]; then
		gcc -static -Os -Wall -Werror -o "$CRI_PAUSE_BIN" "$checkout/hack/cri/pause.c" ||
			{ echo "engines: cri: cannot build hack/cri/pause.c" >&2; exit 1; }
	fi
fi
export E2E_RUNTIMES E2E_ENGINES E2E_GUEST_TONG CRI_E2E_BIN CRI_PAUSE_BIN
n=0
for _ in $E2E_RUNTIMES; do n=$((n + 1)); done
export VMTEST_GUEST=engines VMTEST_CGROUP=v2 VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-$((1800 * n))}
export VMTEST_ENV="${VMTEST_ENV:-} E2E_RUNTIMES E2E_ENGINES E2E_GUEST_TONG CRI_E2E_BIN CRI_PAUSE_BIN E2E_STEPS E2E_KNOWN_FAILURES E2E_VERBOSE E2E_CMD_TIMEOUT"
for v in E2E_STEPS E2E_KNOWN_FAILURES E2E_VERBOSE E2E_CMD_TIMEOUT; do
	[ -z "${!v+x}" ] || export "${v?}"
done

echo "engines: $E2E_ENGINES with ${E2E_RUNTIMES// /, } in the engines guest (tong: $TONG${E2E_STEPS:+; E2E_STEPS=$E2E_STEPS})"
log=$(mktemp /tmp/tong-engines-log.XXXXXX)
trap 'rm -f "$log"' EXIT
t0=$SECONDS
bash "$here/run.sh" bash hack/vmtest/engines.sh --guest | tee "$log"
rc=${PIPESTATUS[0]}
total=$((SECONDS - t0))
job=$(sed -n 's/^engines-guest-seconds=\([0-9]*\)$/\1/p' "$log" | tail -n 1)
if [ -n "$job" ]; then
	echo "engines: ${total}s in all: the guest's job ${job}s, the rest (image check, boot, power-off) $((total - job))s"
else
	echo "engines: ${total}s in all (the guest's job did not finish: exit $rc)"
fi
exit "$rc"
