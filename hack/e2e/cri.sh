#!/usr/bin/env bash
# hack/e2e/cri.sh: Kubernetes' path to a runtime, kubelet -> containerd's CRI plugin ->
# runc v2 shim -> tong (or runc, with RUNTIME=runc), without a kubelet.
#
# Starts a private containerd with its CRI plugin enabled (config, root, state, sockets in a
# temp dir), runtime handlers `tong`, `runc` (and `crun` when installed) that differ only in
# BinaryName and Root, a CNI bridge network of its own (Debian's plugins in /usr/lib/cni, a
# bridge and a free 10.88.X.0/24 of this run, host-local IPAM state in the temp dir), and
# imports two locally built images (busybox, and a pause image compiled here), so no
# registry is ever asked. hack/cri (cri-e2e, a Rust CRI client) then plays the kubelet: one
# invocation per step, each asserting what it does; pods get the cgroup parent
# /tong-e2e-cri-<pid>/<pod> (E2E_CGROUP_DRIVER=systemd: the slice
# tong_e2e_cri_<pid>-<pod>.slice, scopes cri-containerd-<id>.scope). Finally stops
# everything and checks that nothing of the run is left: processes, mounts, cgroups, network
# devices, CNI and IPAM state, netns, runtime and CRI state.
# See hack/e2e/README.md for the environment variables; this script's own:
#   CRI_E2E_BIN=PATH    a prebuilt client, by absolute path (default: built here with cargo,
#                       which needs protoc, into target/cri/<target>/release/cri-e2e)
#   CRI_PAUSE_BIN=PATH  a prebuilt static pause binary, by absolute path (default:
#                       hack/cri/pause.c compiled here with gcc -static)
# hack/vmtest/engines.sh builds both on the host: its guest has neither cargo nor gcc.
set -uo pipefail
# shellcheck source=hack/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_need containerd containerd
e2e_need /usr/lib/cni/bridge containernetworking-plugins
e2e_need ip iproute2
[ -n "${CRI_PAUSE_BIN:-}" ] || e2e_need gcc gcc
[ -n "${CRI_E2E_BIN:-}" ] || e2e_need protoc protobuf-compiler
# The systemd driver: pods in tong_e2e_cri_<pid>-<pod>.slice (children of
# tong_e2e_cri_<pid>.slice: a dash nests slices), containers in cri-containerd-<id>.scope.
SD_SLICE=tong_e2e_cri_$$
E2E_UNITS=("$SD_SLICE.slice" "$SD_SLICE-*.slice" 'cri-containerd-*.scope')
# E2E_STEPS: the steps that always run, and those about cgroups ("cgroup").
E2E_BASE_STEPS="daemon images client no-pods-left stop-daemon"
E2E_CGROUP_STEPS="container-resources pod-defaults container-devices-propagation oom-killed
	update-resources stats stop-grace pod-shared-pid pod-stop-remove"
# The run's units are those named after its pods and containers (a host's own containerd
# makes cri-containerd-<id>.scope units too): the client records every id it gets, and
# the pods' slices, in <workdir>/ids.
e2e_container_ids() {
	cat "$E2E_TMP/work/ids" 2>/dev/null
	echo "$SD_SLICE"
}
e2e_init cri
# What containerd, its shims and CNI make outside the temp dir: shim sockets in
# /run/containerd/s (containerd 1.6 always puts them there), libcni's cache in /var/lib/cni
# (go-cni 1.1 has no knob for it); removed at the end when they did not exist before and
# hold nothing but empty directories.
e2e_track_dirs /run/containerd /opt/containerd /var/lib/cni

NS=k8s.io # CRI's containerd namespace, fixed
IMG=docker.io/tong-e2e/busybox:latest
PAUSE_IMG=docker.io/tong-e2e/pause:3.9
SOCK=$E2E_TMP/containerd.sock
CTRD_PIDFILE=$E2E_TMP/containerd.pid
CTRD_LOG=$E2E_TMP/containerd.log
TASKS=$E2E_TMP/state/io.containerd.runtime.v2.task/$NS
CNI_CONF=$E2E_TMP/cni/net.d
CNI_IPAM=$E2E_TMP/cni/ipam
CNI_NET=tong-e2e-cri-$$
BRIDGE=tongcri$(($$ % 100000))
# cargo on PATH and the build target (the client is built for it, as tong is); TONG_BIN
# when no TONG names tong. Neither is needed with a prebuilt client and TONG.
if { [ -z "${CRI_E2E_BIN:-}" ] || [ -z "${TONG:-}" ]; } &&
	{ [ -z "${CARGO_BUILD_TARGET:-}" ] || [ -z "${TONG_BIN:-}" ] || ! command -v cargo >/dev/null 2>&1; }; then
	# shellcheck source=hack/env.sh
	. "$E2E_REPO/hack/env.sh"
fi
# The handlers: each a runtime binary with a state root of its own. tong's is registered
# with RUNTIME=runc too (containerd only looks at a binary when a pod uses it).
declare -A HANDLER_BIN=([runc]=/usr/sbin/runc)
if [ "$RUNTIME" = tong ]; then
	HANDLER_BIN[tong]=$RUNTIME_BIN
else
	HANDLER_BIN[tong]=${TONG:-$TONG_BIN}
fi
# crun, when installed, for hack/bench.sh's pod starts; no step uses it.
[ ! -x /usr/bin/crun ] || HANDLER_BIN[crun]=/usr/bin/crun
handler_root() { echo "$E2E_TMP/runtime-root/$1"; }

# A 10.88.X.0/24 that no route or address on this host uses, X in 100..254, the search
# starting from the pid so that two runs at once (neither has an address on its bridge
# before its first pod) do not pick the same one.
free_subnet() {
	local x used i
	used=$'\n'$(ip -4 route show)$'\n'$(ip -4 -o addr show | awk '{ print $4 }')
	for i in $(seq 0 154); do
		x=$((100 + ($$ + i) % 155))
		case $used in
		*"10.88.$x."*) ;;
		*)
			echo "10.88.$x.0/24"
			return
			;;
		esac
	done
	e2e_die "no free 10.88.X.0/24 subnet for the CNI bridge"
}
SUBNET=${E2E_CRI_SUBNET:-$(free_subnet)}
# What is there before the run: only new veths and netns count as the run's.
VETHS_BEFORE=$(ip -o link show type veth 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort)
# /run/containerd made by this run: any mount there is the run's.
RUN_CTRD_OURS=$([ -e /run/containerd ] || echo 1)
NETNS_BEFORE=$(find /var/run/netns -mindepth 1 -maxdepth 1 -printf "%f\n" 2>/dev/null | sort)

if e2e_systemd; then
	CGROUP_PARENT=$SD_SLICE.slice
	SYSTEMD_CGROUP=true
else
	CGROUP_PARENT=/$E2E_CGROUP
	SYSTEMD_CGROUP=false
fi

ctr_() { timeout "$E2E_CMD_TIMEOUT" ctr --address "$SOCK" --namespace "$NS" "$@"; }

# ------------------------------------------------------------ daemon

stop_containerd() {
	e2e_stop_pid "$CTRD_PIDFILE"
	rm -f "$CTRD_PIDFILE"
}
# The bridge plugin makes the bridge and never deletes it (CNI DEL only removes a pod's
# veth); the pods' veths die with their netns.
remove_bridge() {
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}
# With the systemd driver the pod slices stay active once their scopes are gone (the
# kubelet stops its own); the run's parent slice takes its children along.
stop_slices() {
	if e2e_systemd; then
		systemctl stop "$SD_SLICE.slice" 2>/dev/null || true
	fi
	return 0
}
# libcni's cache of the pods a forced stop left: <network>-<sandbox id>-eth0, and
# cni-loopback-<sandbox id>-lo beside it (go-cni's own loopback network).
remove_cni_cache() {
	local f id
	for f in /var/lib/cni/results/"$CNI_NET"-*; do
		[ -e "$f" ] || continue
		id=${f#/var/lib/cni/results/"$CNI_NET"-}
		id=${id%-*}
		rm -f /var/lib/cni/results/*-"$id"-*
	done
}
E2E_CLEANUP_FNS+=(stop_containerd remove_bridge stop_slices remove_cni_cache)

write_config() {
	local h
	cat >"$E2E_TMP/config.toml" <<EOF
version = 2
root = "$E2E_TMP/root"
state = "$E2E_TMP/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$E2E_TMP/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_TMP/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMG"
  # Root lacks CAP_SYS_RESOURCE here: no oom_score_adj below the daemon's own.
  restrict_oom_score_adj = true
  # The pods' netns bind mounts in the state dir rather than in /var/run/netns.
  netns_mounts_under_state_dir = true
  # The default profile would be loaded into the kernel with apparmor_parser, and stay
  # there after the run.
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$E2E_TMP/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "$RUNTIME"
    snapshotter = "overlayfs"
EOF
	for h in "${!HANDLER_BIN[@]}"; do
		cat >>"$E2E_TMP/config.toml" <<EOF
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$h]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$h.options]
      BinaryName = "${HANDLER_BIN[$h]}"
      Root = "$(handler_root "$h")"
      SystemdCgroup = $SYSTEMD_CGROUP
EOF
	done
	# No registry: images come from `ctr images import`; CRI only pulls an image it does
	# not have (the client never calls PullImage, and the sandbox image is imported first).
	# Should it try all the same, docker.io (both images' registry) is the discard port
	# of this host: the pull fails at once and nothing leaves the machine.
	mkdir -p "$CNI_CONF" "$CNI_IPAM" "$E2E_TMP/certs.d/docker.io"
	cat >"$E2E_TMP/certs.d/docker.io/hosts.toml" <<EOF
server = "http://127.0.0.1:9"
# containerd 1.6 rejects a hosts.toml without a host tree ("invalid host tree") and
# then falls back to the registry itself.
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
	cat >"$CNI_CONF/10-tong-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_IPAM",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "loopback" }
  ]
}
EOF
}

start_containerd() {
	write_config
	echo "+ containerd --config $E2E_TMP/config.toml"
	setsid containerd --config "$E2E_TMP/config.toml" >"$CTRD_LOG" 2>&1 </dev/null &
	echo $! >"$CTRD_PIDFILE"
	wait_until 60 "containerd answers on $SOCK" ctr_ version
	run_cmd ctr_ plugins ls
	printf '%s\n' "$OUT" | grep -q 'io.containerd.grpc.v1 *cri .*ok' || fail "the CRI plugin is not loaded"
	echo "  ok: the CRI plugin is loaded"
}

e2e_diagnose() {
	local f
	# The runtime's own errors reach containerd's log ("OCI runtime create failed: ...");
	# the bundles with its log.json are gone once the client has removed its pods.
	echo "--- containerd log, errors (last 20)"
	grep 'level=error' "$CTRD_LOG" 2>/dev/null | tail -n 20
	echo "--- containerd log (last 20 lines)"
	tail -n 20 "$CTRD_LOG" 2>/dev/null
	for f in "$TASKS"/*/log.json; do
		[ -s "$f" ] || continue
		echo "--- runtime log $f"
		tail -n 10 "$f"
	done
}

# ------------------------------------------------------------ images

t_images() {
	local pause=${CRI_PAUSE_BIN:-$E2E_TMP/pause}
	if [ -z "${CRI_PAUSE_BIN:-}" ]; then
		expect_ok gcc -static -Os -Wall -Werror -o "$pause" "$E2E_REPO/hack/cri/pause.c"
	fi
	[ -x "$pause" ] || fail "no pause binary at $pause"
	# One layer holding /pause, its entrypoint (lib.sh's images run `sh`).
	mkdir -p "$E2E_TMP/pause-rootfs"
	cp "$pause" "$E2E_TMP/pause-rootfs/pause"
	tar -C "$E2E_TMP/pause-rootfs" --numeric-owner --owner=0 --group=0 -cf "$E2E_TMP/pause-layer.tar" pause ||
		fail "cannot make the pause layer"
	e2e_oci_archive "$E2E_TMP/pause-layer.tar" "$E2E_TMP/pause.tar" "$PAUSE_IMG" \
		'{"Entrypoint": ["/pause"], "WorkingDir": "/"}' || fail "cannot build the pause archive"
	e2e_rootfs_tar "$E2E_TMP/rootfs.tar"
	e2e_oci_archive "$E2E_TMP/rootfs.tar" "$E2E_TMP/image.tar" "$IMG" || fail "cannot build the OCI archive"
	expect_ok ctr_ images import "$E2E_TMP/pause.tar"
	expect_ok ctr_ images import "$E2E_TMP/image.tar"
	rm -rf "$E2E_TMP/image.tar" "$E2E_TMP/pause.tar" "$E2E_TMP/pause-layer.tar" "$E2E_TMP/pause-rootfs"
	expect_ok ctr_ images ls -q
	expect_contains "$IMG"
	expect_contains "$PAUSE_IMG"
}

# ------------------------------------------------------------ the client

CLIENT=${CRI_E2E_BIN:-$E2E_REPO/target/cri/${CARGO_BUILD_TARGET:-}/release/cri-e2e}

t_client() {
	if [ -z "${CRI_E2E_BIN:-}" ]; then
		# From the repo root, so that .cargo/config.toml's flags apply; a target dir of its
		# own, so that tong's builds and this one never wait on each other's lock.
		expect_ok sh -c "cd '$E2E_REPO' && CARGO_TARGET_DIR='$E2E_REPO/target/cri' cargo build --release --quiet --manifest-path hack/cri/Cargo.toml"
	fi
	[ -x "$CLIENT" ] || fail "no client binary at $CLIENT"
	expect_ok "$CLIENT" --endpoint "$SOCK" --handler "$RUNTIME" --image "$IMG" --pause-image "$PAUSE_IMG" \
		--workdir "$E2E_TMP/work" version
	expect_contains "containerd"
	# The client's PullImage of an absent image went to the discard port, not a registry.
	expect_contains "127.0.0.1:9"
}

# run_client SCENARIO: one scenario of the client against the handler under test.
run_client() {
	expect_ok timeout "$E2E_CMD_TIMEOUT" "$CLIENT" --endpoint "$SOCK" --handler "$RUNTIME" \
		--image "$IMG" --pause-image "$PAUSE_IMG" --cgroup-parent "$CGROUP_PARENT" \
		--workdir "$E2E_TMP/work" --subnet "$SUBNET" "$1"
}

# The pods ran with the binary under test: its handler's Root holds the state dirs of
# containerd's namespace, the other handlers' Roots were never made.
t_handler_root() {
	local h
	[ -d "$(handler_root "$RUNTIME")/$NS" ] || fail "$(handler_root "$RUNTIME")/$NS was never made: did ${HANDLER_BIN[$RUNTIME]} run?"
	echo "  ok: ${HANDLER_BIN[$RUNTIME]} kept its state in $(handler_root "$RUNTIME")"
	for h in "${!HANDLER_BIN[@]}"; do
		[ "$h" = "$RUNTIME" ] || [ ! -e "$(handler_root "$h")" ] || fail "handler $h's Root exists: $(handler_root "$h")"
	done
	echo "  ok: no other handler ran"
}

# The pod start bench (hack/bench.sh's "pod" case; only when CRI_BENCH_OUT names its JSON
# file): cri-e2e bench with every handler of CRI_BENCH_HANDLERS this run has, taking turns,
# CRI_BENCH_RUNS runs each; its table goes to the step's output and to CRI_BENCH_OUT's .txt.
t_bench() {
	local h hs=()
	for h in ${CRI_BENCH_HANDLERS:-tong crun runc}; do
		[ -n "${HANDLER_BIN[$h]:-}" ] && hs+=("$h")
	done
	[ ${#hs[@]} -gt 0 ] || fail "no handler of '${CRI_BENCH_HANDLERS:-}' is registered"
	expect_ok timeout 3600 "$CLIENT" --endpoint "$SOCK" --handlers "$(IFS=,; echo "${hs[*]}")" \
		--runs "${CRI_BENCH_RUNS:-10}" --out "$CRI_BENCH_OUT" \
		--image "$IMG" --pause-image "$PAUSE_IMG" --cgroup-parent "$CGROUP_PARENT" \
		--workdir "$E2E_TMP/work" --subnet "$SUBNET" bench
	printf '%s\n' "$OUT" | grep -v '^ *ok: ' >"${CRI_BENCH_OUT%.json}.txt"
}

t_stop_daemon() {
	local pid
	pid=$(cat "$CTRD_PIDFILE")
	stop_containerd
	! kill -0 "$pid" 2>/dev/null || fail "containerd ($pid) still running"
	echo "  ok: containerd stopped"
}

# ------------------------------------------------------------ leftovers

e2e_before_leftovers() { stop_slices; }

e2e_engine_leftovers() {
	local left h new
	# seccomp@cache is tong's compiled-seccomp cache, kept across containers by design.
	# (find fails on a directory never made: nothing left there either.)
	left=$(for h in "${!HANDLER_BIN[@]}"; do
		find "$(handler_root "$h")" -mindepth 2 -maxdepth 2 ! -name 'seccomp@cache' 2>/dev/null
	done
		find "$TASKS" -mindepth 1 -maxdepth 1 2>/dev/null
		find "$E2E_TMP"/{root,state}/io.containerd.grpc.v1.cri/{sandboxes,containers} -mindepth 1 -maxdepth 1 2>/dev/null
		true)
	[ -z "$left" ] || fail "runtime, task or CRI state left: $left"
	echo "  ok: no runtime, task or CRI state left"
	if [ -n "$RUN_CTRD_OURS" ]; then
		left=$(awk '$5 ~ "^/run/containerd/" { print $5 }' /proc/self/mountinfo)
		[ -z "$left" ] || fail "mounts left under /run/containerd: $left"
		echo "  ok: no mount left under /run/containerd"
	fi
	left=$(find "$CNI_IPAM" -type f ! -name lock ! -name 'last_reserved_ip.*' 2>/dev/null || true)
	[ -z "$left" ] || fail "IPAM reservations left: $left"
	left=$(find /var/lib/cni -name "*$CNI_NET*" 2>/dev/null || true)
	[ -z "$left" ] || fail "libcni cache entries left: $left"
	echo "  ok: no IPAM reservation, no libcni cache entry left"
	new=$(comm -13 <(echo "$NETNS_BEFORE") <(find /var/run/netns -mindepth 1 -maxdepth 1 -printf "%f\n" 2>/dev/null | sort) | grep '^cni-' || true)
	[ -z "$new" ] || fail "netns left in /var/run/netns: $new"
	left=$(comm -13 <(echo "$VETHS_BEFORE") <(ip -o link show type veth | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort))
	[ -z "$left" ] || fail "veths left: $left"
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		left=$(ip -o link show master "$BRIDGE")
		[ -z "$left" ] || fail "interfaces left on $BRIDGE: $left"
		remove_bridge
	fi
	! ip link show "$BRIDGE" >/dev/null 2>&1 || fail "cannot remove bridge $BRIDGE"
	echo "  ok: no netns, veth or bridge ($BRIDGE) left"
}

# ------------------------------------------------------------ steps

e2e_log "e2e: CRI handler $RUNTIME, CNI network $CNI_NET on $BRIDGE ($SUBNET), handlers: ${!HANDLER_BIN[*]}"
step daemon start_containerd
step images t_images
step client t_client
step pod-network run_client pod-network
step pod-host-network run_client pod-host-network
step container-env-mounts run_client container-env-mounts
step container-resources run_client container-resources
step container-security run_client container-security
step pod-defaults run_client pod-defaults
step container-privileged run_client container-privileged
step container-start-error run_client container-start-error
step pod-host-namespaces run_client pod-host-namespaces
step container-devices-propagation run_client container-devices-propagation
step exec-sync run_client exec-sync
step exit-code run_client exit-code
step oom-killed run_client oom-killed
step update-resources run_client update-resources
step stats run_client stats
step logs-reopen run_client logs-reopen
step stop-grace run_client stop-grace
step restart-attempt run_client restart-attempt
step pod-shared-pid run_client pod-shared-pid
step pod-stop-remove run_client pod-stop-remove
step exec-stream run_client exec-stream
step attach-stream run_client attach-stream
if [ -n "${CRI_BENCH_OUT:-}" ]; then step bench t_bench; fi
step no-pods-left run_client no-pods-left
step handler-root t_handler_root
step stop-daemon t_stop_daemon
e2e_finish
