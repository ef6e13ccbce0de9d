#!/usr/bin/env bash
# hack/e2e/podman.sh: podman (with conmon) drives tong (or runc, with
# RUNTIME=runc).
#
# podman has no daemon: every command gets --root, --runroot, --tmpdir and
# --volumepath in a temp dir and the cgroupfs manager, and reads a
# CONTAINERS_CONF of this script's that registers the runtime by absolute path
# under its own name ([engine.runtimes] tong = ["/abs/target/x86_64-unknown-linux-musl/release/tong"])
# and lists it in runtime_supports_json, so podman passes
# `--log-format=json --log <file>` to tong as it does to runc.
# podman passes no --root to the runtime, and conmon's cleanup command would
# drop a --runtime-flag, so the runtime keeps its default state root
# (/run/tong, /run/runc); the leftover check looks there for this run's ids.
# Containers get --cgroup-parent /tong-e2e-podman-<pid>, --network none and
# --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 (root here lacks
# CAP_SYS_RESOURCE). The image comes from `podman import` of a local busybox
# rootfs tarball. Each step is asserted; nothing may be left at the end.
# With E2E_CGROUP_DRIVER=systemd: no --cgroup-manager and no --cgroup-parent,
# podman's defaults (the systemd manager; libpod-<id>.scope for the container and
# libpod-conmon-<id>.scope for conmon, in machine.slice).
# See hack/e2e/README.md for the environment variables.
set -uo pipefail
# shellcheck source=hack/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_need podman podman
e2e_need conmon conmon
e2e_need script bsdutils
# The systemd manager's units: the container's scope and conmon's.
E2E_UNITS=('libpod-*.scope')
# E2E_STEPS: the steps that always run, and those about cgroups and units ("cgroup").
E2E_BASE_STEPS="setup image rm"
E2E_CGROUP_STEPS="run run-d inspect exec top stats pause-unpause stop-start kill
	wait-restart oom runtime-error events"
e2e_init podman
# containers/image keeps a blob info cache in /var/lib/containers/cache
# whatever --root says: removed at the end if this run made it.
[ -e /var/lib/containers ] && VARLIB_OURS= || VARLIB_OURS=1
e2e_track_dirs /var/lib/containers

IMG=localhost/tong-e2e/busybox:latest
# The pods' infra image (checkpoint-pod): the test image's rootfs running sleep.
PAUSE_IMG=localhost/tong-e2e/pause:latest
RT_NAME=$(basename "$RUNTIME_BIN")
# The runtime's default state root is shared with the host: the root itself and tong's
# compiled-seccomp cache in it (podman passes its default profile) go if this run made them.
[ -e "/run/$RT_NAME/seccomp@cache" ] && SECCOMP_CACHE_OURS= || SECCOMP_CACHE_OURS=1
e2e_track_dirs "/run/$RT_NAME"
export CONTAINERS_CONF=$E2E_TMP/containers.conf
PODMAN_ARGS=(
	--root "$E2E_TMP/storage" --runroot "$E2E_TMP/runroot" --tmpdir "$E2E_TMP/libpod"
	--volumepath "$E2E_TMP/volumes" --network-config-dir "$E2E_TMP/cni"
	--storage-driver overlay --events-backend file
	--conmon /usr/bin/conmon --runtime "$RT_NAME"
)
RUN_ARGS=(--network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
if ! e2e_systemd; then
	PODMAN_ARGS+=(--cgroup-manager cgroupfs)
	RUN_ARGS+=(--cgroup-parent "/$E2E_CGROUP")
fi

pm() { timeout "$E2E_CMD_TIMEOUT" podman "${PODMAN_ARGS[@]}" "$@"; }
prun() { pm run "${RUN_ARGS[@]}" "$@"; }
insp() { pm inspect -f "$1" "$2"; }
cid() { insp '{{.Id}}' "$1"; }
# cgfile CONTROLLER NAME FILE: a file of container NAME's cgroup (systemd manager:
# FILE of the cgroup v2 its init is in; CONTROLLER is not used).
cgfile() {
	if e2e_systemd; then
		e2e_cgfile "$(insp '{{.State.Pid}}' "$2")" "$3"
	else
		cat "/sys/fs/cgroup/$1/$E2E_CGROUP/libpod-$(cid "$2")/$3"
	fi
}
frozen() {
	if e2e_systemd; then
		e2e_frozen "$(insp '{{.State.Pid}}' "$1")"
	else
		cgfile freezer "$1" freezer.state
	fi
}
state_is() { [ "$(insp '{{.State.Status}}' "$1")" = "$2" ]; }

write_conf() {
	cat >"$CONTAINERS_CONF" <<EOF
[containers]
netns = "none"

[engine]
runtime = "$RT_NAME"
$(e2e_systemd || echo 'cgroup_manager = "cgroupfs"')
events_logger = "file"
events_logfile_path = "$E2E_TMP/events.log"
tmp_dir = "$E2E_TMP/libpod"
# podman passes --log-format=json (and reads the runtime's JSON log on
# failure) only for the runtimes named here.
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "$RT_NAME"]

[engine.runtimes]
$RT_NAME = ["$RUNTIME_BIN"]
EOF
}

e2e_diagnose() {
	local f
	for f in "$E2E_TMP"/runroot/overlay-containers/*/userdata/oci-log; do
		[ -s "$f" ] || continue
		echo "--- runtime log $f"
		tail -n 5 "$f"
	done
	# CRIU's logs of a checkpoint or restore (podman keeps them in the container's dirs).
	find "$E2E_TMP/storage/overlay-containers" "$E2E_TMP/runroot/overlay-containers" \
		\( -name dump.log -o -name restore.log \) 2>/dev/null | while read -r f; do
		echo "--- CRIU log $f (errors and warnings, and its last lines)"
		grep -E '^(Error|Warn)|[Ee]rror' "$f" | tail -n 10
		tail -n 3 "$f"
	done
}

# The ids of this run's containers (for the systemd driver's leftover checks), from the
# events log (JSON lines), which outlives the containers.
e2e_container_ids() {
	grep -o '"ID":"[0-9a-f]\{64\}"' "$E2E_TMP/events.log" 2>/dev/null | cut -d'"' -f4 | sort -u
}

e2e_engine_leftovers() {
	local id n=0
	for id in $(pm events --stream=false --format '{{.ID}}' | sort -u); do
		[ ! -e "/run/$RT_NAME/$id" ] || fail "runtime state left: /run/$RT_NAME/$id"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "no container ids in podman's events"
	echo "  ok: none of the $n containers' state is left in /run/$RT_NAME"
	# tong's seccomp cache is no container's state; it goes with the root this run made.
	remove_seccomp_cache
}

# conmon's cgroup (podman puts conmon in <cgroup parent>/conmon with the
# cgroupfs manager and never removes it): ours, so removed before the checks.
e2e_before_leftovers() {
	local d
	for d in /sys/fs/cgroup/*/"$E2E_CGROUP"/conmon; do
		case $(stat -f -c %T "$d" 2>/dev/null) in
		cgroupfs | cgroup2fs) rmdir "$d" ;;
		esac
	done
	return 0
}

# On any exit: remove the containers (podman then has the runtime delete its
# state in /run/<runtime>) and the storage driver's mount.
podman_cleanup() {
	[ -f "$CONTAINERS_CONF" ] || return 0
	pm rm -a -f -t 0
	umount_storage
	remove_blob_cache
	remove_seccomp_cache
}
remove_seccomp_cache() {
	[ -n "$SECCOMP_CACHE_OURS" ] && [ -z "$(e2e_other_runs)" ] || return 0
	rm -rf "/run/$RT_NAME/seccomp@cache"
}
remove_blob_cache() {
	[ -z "$VARLIB_OURS" ] || rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
}
umount_storage() {
	# The overlay driver's private bind mount of its own home.
	if awk -v t="$E2E_TMP/storage/overlay" '$5 == t { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		umount "$E2E_TMP/storage/overlay"
	fi
}
E2E_CLEANUP_FNS+=(podman_cleanup)

# ------------------------------------------------------------ checkpoint/restore helpers

# The counter: prints 0, 1, 2, ... one a second, from its shell's memory alone.
# shellcheck disable=SC2016 # the container's shell expands them
COUNTER=(sh -c 'i=0; while :; do echo $i; i=$((i+1)); sleep 1; done')
counts() { pm logs "$1" 2>/dev/null | grep -xE '[0-9]+' || true; }
last_count() { counts "$1" | tail -n 1; }
# count_past NAME N: container NAME printed a number above N.
count_past() {
	local n
	n=$(last_count "$1")
	[ -n "$n" ] && [ "$n" -gt "$2" ]
}
# start_counter NAME: a running counter that printed 0, 1 and 2.
start_counter() {
	expect_ok prun -d --name "$1" "$IMG" "${COUNTER[@]}"
	wait_until 30 "$1 counts to 2" count_past "$1" 1
}
# expect_counts_on NAME BEFORE: NAME counts on from BEFORE, the last number it printed
# before its checkpoint: two numbers past it, and all it printed is one run of
# consecutive numbers (a restart at 0, a repeat or a gap breaks it) beginning at 0 (its
# log kept) or past BEFORE (a new log: restored from an exported checkpoint).
expect_counts_on() {
	local name=$1 before=$2 nums
	wait_until 60 "$name counts past $((before + 1))" count_past "$name" $((before + 1))
	nums=$(counts "$name" | tr '\n' ' ')
	echo "  $name printed: $nums"
	awk -v b="$before" '{
		for (i = 1; i <= NF; i++) {
			if (i == 1) first = $i
			else if ($i != prev + 1) { print "not counting on: " prev " then " $i; bad = 1 }
			prev = $i
		}
	}
	END {
		if (!bad && first != 0 && first <= b) { print "begins at " first ", neither 0 nor past " b; bad = 1 }
		exit bad
	}' <<<"$nums" || fail "$name does not count on from $before"
	echo "  ok: $name counts on from $before (to $(last_count "$name"))"
}
# expect_restored_ok NAME [any-cgroup]: NAME runs in its own cgroup (systemd: its scope,
# active; with any-cgroup, its cgroup is only shown), not frozen, its init the counter,
# and exec works in it.
expect_restored_ok() {
	local name=$1 pid id
	expect_eq "$(insp '{{.State.Status}}' "$name")" running "State.Status"
	pid=$(insp '{{.State.Pid}}' "$name")
	id=$(cid "$name")
	[ -d "/proc/$pid" ] || fail "State.Pid $pid is not live"
	if [ "${2:-}" = any-cgroup ]; then
		echo "  note: $name's init $pid is in $(e2e_systemd && e2e_cgroup_of "$pid" || grep ':memory:' "/proc/$pid/cgroup") (its id $id)"
	elif e2e_systemd; then
		e2e_expect_unit "$pid" "libpod-$id.scope"
	else
		run_cmd grep ':memory:' "/proc/$pid/cgroup"
		expect_out "4:memory:/$E2E_CGROUP/libpod-$id"
	fi
	expect_eq "$(frozen "$name")" THAWED "freezer state"
	expect_ok pm exec "$name" sh -c 'tr "\0" " " </proc/1/cmdline'
	expect_contains "while :"
}

# ------------------------------------------------------------ steps

t_setup() {
	write_conf
	expect_ok pm info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}} {{.Host.CgroupManager}}'
	expect_out "$RT_NAME $RUNTIME_BIN $E2E_CGROUP_DRIVER"
}

t_image() {
	e2e_rootfs_tar "$E2E_TMP/rootfs.tar"
	expect_ok pm import --change CMD=sh "$E2E_TMP/rootfs.tar" "$IMG"
	expect_ok pm images --format '{{.Repository}}:{{.Tag}}'
	expect_contains "$IMG"
}

t_run() {
	expect_ok prun --rm "$IMG" echo hello from podman
	expect_out "hello from podman"
	expect_rc 3 prun --rm "$IMG" sh -c 'exit 3'
	OUT=$(echo piped-in | prun --rm -i "$IMG" cat) || fail "run -i failed"
	expect_out "piped-in"
	expect_ok prun --rm -e A=1 --user 1000:2000 --hostname e2ehost --workdir /tmp "$IMG" \
		sh -c 'echo "$A|$(id -u):$(id -g)|$(hostname)|$(pwd)|$(ulimit -n)"'
	expect_out "1|1000:2000|e2ehost|/tmp|1024"
	expect_ok prun --rm --read-only "$IMG" sh -c 'touch /x 2>&1; grep Seccomp: /proc/self/status'
	expect_contains "Read-only file system"
	expect_contains $'Seccomp:\t2'
}

t_run_tty() {
	expect_ok in_tty podman "${PODMAN_ARGS[@]}" run "${RUN_ARGS[@]}" --rm -it "$IMG" sh -c 'tty; echo in-a-tty; sleep 0.5'
	expect_contains "/dev/pts/0"
	expect_contains "in-a-tty"
}

t_run_d() {
	expect_ok prun -d --name web "$IMG" \
		sh -c 'trap "echo got-TERM; exit 42" TERM; echo web-started; while :; do sleep 0.1; done'
	wait_until 10 "web running" state_is web running
	expect_ok pm ps --format '{{.Names}} {{.Status}}'
	expect_contains "web Up"
}

t_inspect() {
	local pid id
	expect_eq "$(insp '{{.State.Running}} {{.OCIRuntime}}' web)" "true $RT_NAME" "State.Running OCIRuntime"
	pid=$(insp '{{.State.Pid}}' web)
	expect_match "$pid" '^[1-9][0-9]*$' "State.Pid"
	[ -d "/proc/$pid" ] || fail "State.Pid $pid is not live"
	id=$(cid web)
	if e2e_systemd; then
		run_cmd cat "/proc/$pid/cgroup"
		expect_out "0::/machine.slice/libpod-$id.scope"
		e2e_expect_unit "$pid" "libpod-$id.scope"
		e2e_expect_unit_props "libpod-$id.scope" Slice=machine.slice Delegate=yes
		# conmon in a scope of its own beside it, unless podman runs in a systemd service
		# ($INVOCATION_ID set): then podman leaves conmon in the service's cgroup.
		if [ -z "${INVOCATION_ID:-}" ]; then
			e2e_expect_unit_props "libpod-conmon-$id.scope" ActiveState=active Slice=machine.slice
			expect_eq "$(e2e_cgroup_of "$(insp '{{.State.ConmonPid}}' web)")" "/machine.slice/libpod-conmon-$id.scope" "conmon's cgroup"
		else
			echo "  skipped: conmon's scope (INVOCATION_ID is set: podman keeps conmon in the calling service's cgroup)"
		fi
	else
		run_cmd grep ':memory:' "/proc/$pid/cgroup"
		expect_out "4:memory:/$E2E_CGROUP/libpod-$id"
	fi
}

t_exec() {
	expect_ok pm exec -e FOO=bar -w /tmp -u 1000 web sh -c 'echo "$FOO $(pwd) $(id -u)"'
	expect_out "bar /tmp 1000"
	expect_rc 5 pm exec web sh -c 'exit 5'
	expect_rc 127 pm exec web /no/such/binary
	expect_ok pm exec -d web sleep 77
}

t_exec_tty() {
	expect_ok in_tty podman "${PODMAN_ARGS[@]}" exec -it web sh -c 'tty; echo in-a-tty; sleep 0.5'
	expect_contains "/dev/pts/"
	expect_contains "in-a-tty"
}

t_logs() {
	expect_ok pm logs web
	expect_out "web-started"
}

t_top() {
	expect_ok pm top web
	expect_contains "sleep 77"
	expect_contains "while :"
}

t_stats() {
	local mem
	expect_ok pm stats --no-stream --format '{{.Name}} {{.MemUsage}}' web
	mem=${OUT#web }
	mem=${mem%% *}
	expect_match "$mem" '^[0-9.]+([kKMG]i?)?B$' "memory usage"
	case $mem in 0B | 0.0*) fail "memory usage is zero" ;; esac
}

t_pause() {
	expect_ok pm pause web
	expect_eq "$(insp '{{.State.Status}}' web)" paused "State.Status after pause"
	expect_eq "$(frozen web)" FROZEN "freezer state"
	expect_ok pm unpause web
	expect_eq "$(insp '{{.State.Status}}' web)" running "State.Status after unpause"
	expect_eq "$(frozen web)" THAWED "freezer state"
	expect_ok pm exec web echo alive
	expect_out "alive"
}

t_stop() {
	local t0=$SECONDS
	expect_ok pm stop web
	[ $((SECONDS - t0)) -lt 8 ] || fail "stop took $((SECONDS - t0))s: SIGTERM did not end it"
	expect_eq "$(insp '{{.State.Status}} {{.State.ExitCode}}' web)" "exited 42" "State after stop"
	run_cmd pm logs web
	expect_contains "got-TERM"
	expect_ok pm start web
	wait_until 10 "web running again" state_is web running
}

t_kill() {
	expect_ok pm kill web
	wait_until 10 "web exited" state_is web exited
	expect_eq "$(insp '{{.State.ExitCode}}' web)" 137 "ExitCode after kill"
}

t_wait_restart() {
	expect_ok prun -d --name waiter "$IMG" sh -c 'sleep 1; exit 7'
	expect_ok pm wait waiter
	expect_out "7"
	expect_ok pm restart web
	wait_until 10 "web running after restart" state_is web running
}

t_userns() {
	local hd=$E2E_TMP/userns
	mkdir -p "$hd"
	chown 100000:100000 "$hd"
	expect_ok prun --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 -v "$hd:/data" "$IMG" \
		sh -c 'cat /proc/self/uid_map; id -u; touch /data/made-inside'
	expect_match "$(printf '%s\n' "$OUT" | head -n 1 | tr -s ' ')" '^ ?0 100000 65536$' "uid_map"
	expect_contains $'\n0'
	expect_eq "$(stat -c %u:%g "$hd/made-inside")" "100000:100000" "host owner of a file made as root inside"
}

t_preserve_fds() {
	echo passed-fd >"$E2E_TMP/fd3.txt"
	expect_ok prun --rm --preserve-fds 1 "$IMG" sh -c 'cat <&3' 3<"$E2E_TMP/fd3.txt"
	expect_out "passed-fd"
}

t_oom() {
	# conmon 2.1.6 watches the container's memory cgroup (memory.oom_control)
	# and, on an OOM kill, creates "oom" in its working directory (the
	# script's cwd); podman 4.3.1 looks for it in the bundle instead, so
	# State.OOMKilled stays false here with runc too. Assert what is there.
	rm -f "$E2E_TMP/cwd/oom"
	if e2e_systemd; then
		t_oom_v2
		return
	fi
	expect_rc 137 prun --name oomer --memory 32m "$IMG" "${E2E_OOM_CMD[@]}"
	expect_eq "$(insp '{{.State.ExitCode}} {{.HostConfig.Memory}}' oomer)" "137 33554432" "ExitCode HostConfig.Memory"
	[ -e "$E2E_TMP/cwd/oom" ] || fail "conmon saw no OOM kill in the container's memory cgroup"
	echo "  ok: conmon saw the OOM kill (State.OOMKilled: $(insp '{{.State.OOMKilled}}' oomer))"
}

hog_killed() { [[ $'\n'$(pm logs oomer 2>&1)$'\n' == *$'\n'"hog-status 137"$'\n'* ]]; }
# On cgroup v2 conmon 2.1.6 reads memory.events when inotify wakes it and, in the engines
# guest (TCG), writes its marker for one OOM kill in four, with runc as with tong, even
# while the cgroup stays: the kernel's own count in the container's scope is asserted
# instead (the hog a child of the init, which stays), conmon's marker only reported.
t_oom_v2() {
	local pid id
	expect_ok prun -d --name oomer --memory 32m "$IMG" \
		sh -c 'sh -c "x=0123456789abcdef; while :; do x=\$x\$x; done"; echo hog-status $?; exec sleep 1000'
	wait_until 60 "the hog is killed (137)" hog_killed
	pid=$(insp '{{.State.Pid}}' oomer)
	id=$(cid oomer)
	expect_eq "$(e2e_cgfile "$pid" memory.max)" 33554432 "memory.max"
	expect_eq "$(e2e_cgfile "$pid" memory.events | awk '$1 == "oom_kill" { print $2 }')" 1 "oom_kill in the container's memory.events"
	e2e_expect_unit_props "libpod-$id.scope" MemoryMax=33554432
	echo "  note: conmon's OOM marker: $([ -e "$E2E_TMP/cwd/oom" ] && echo written || echo "not written (see above)")"
	expect_ok pm stop -t 0 oomer
	expect_eq "$(insp '{{.State.ExitCode}} {{.HostConfig.Memory}}' oomer)" "137 33554432" "ExitCode (stop: SIGKILL) HostConfig.Memory"
}

t_runtime_error() {
	local id log
	# podman reads the runtime's --log JSON (one object) and shows its text.
	expect_rc 127 prun --name bad "$IMG" /no/such/binary
	expect_contains "$RT_NAME: "
	expect_contains 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
	id=$(cid bad)
	log=$E2E_TMP/runroot/overlay-containers/$id/userdata/oci-log
	[ -s "$log" ] || fail "no runtime log at $log"
	run_cmd python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["level"], "|", o["msg"])' "$log"
	[ "$RC" = 0 ] || fail "$log is not one JSON object"
	expect_contains "error | "
	expect_contains 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
	expect_ok pm rm bad
}

# What podman asks of the runtime before it checkpoints (`checkpoint --help` exits 0) and
# before it restores into a pod (`restore --lsm-mount-context` without its value prints
# urfave/cli's "flag needs an argument"). No CRIU needed.
t_checkpoint_probes() {
	expect_ok "$RUNTIME_BIN" checkpoint --help
	expect_rc 1 "$RUNTIME_BIN" restore --lsm-mount-context
	expect_contains "flag needs an argument"
}

# Each step's containers go when it ends, whatever it ends with (the later steps and the
# leftovers check then run as usual under E2E_KNOWN_FAILURES).
t_checkpoint_restore() {
	local before pid
	trap 'pm rm -f -t 0 ck >/dev/null 2>&1' EXIT
	start_counter ck
	pid=$(insp '{{.State.Pid}}' ck)
	timed pm container checkpoint ck
	expect_eq "$(insp '{{.State.Status}} {{.State.Checkpointed}}' ck)" "exited true" "State.Status Checkpointed"
	wait_until 10 "the checkpointed pid $pid gone" sh -c "! [ -d /proc/$pid ]"
	before=$(last_count ck)
	echo "  ok: it had counted to $before"
	timed pm container restore ck
	expect_eq "$(insp '{{.State.Restored}}' ck)" true "State.Restored"
	expect_restored_ok ck
	expect_counts_on ck "$before"
	expect_ok pm rm -f -t 0 ck
	trap - EXIT
}

t_checkpoint_leave_running() {
	local before pid
	trap 'pm rm -f -t 0 ckl >/dev/null 2>&1' EXIT
	start_counter ckl
	pid=$(insp '{{.State.Pid}}' ckl)
	timed pm container checkpoint --leave-running ckl
	expect_eq "$(insp '{{.State.Pid}}' ckl)" "$pid" "State.Pid (the same process)"
	before=$(last_count ckl)
	expect_restored_ok ckl
	expect_counts_on ckl "$before"
	expect_ok pm rm -f -t 0 ckl
	trap - EXIT
}

# The second copy's init: in its own scope with tong; runc 1.1.5 leaves CRIU to restore the
# cgroup the checkpoint names, the first copy's scope (shown, not asserted).
t_checkpoint_export_import() {
	local before tar=$E2E_TMP/ckx.tar.gz
	trap 'pm rm -f -t 0 --ignore ckx ckx2 >/dev/null 2>&1; rm -f "$E2E_TMP/ckx.tar.gz"' EXIT
	start_counter ckx
	timed pm container checkpoint --export="$tar" ckx
	[ -s "$tar" ] || fail "no checkpoint archive at $tar"
	before=$(last_count ckx)
	echo "  ok: it had counted to $before; archive $(du -h "$tar" | cut -f1)"
	expect_ok pm rm ckx
	timed pm container restore --import="$tar"
	expect_restored_ok ckx
	expect_counts_on ckx "$before"
	# A second copy of it, beside the first.
	timed pm container restore --import="$tar" --name ckx2
	expect_restored_ok ckx2 any-cgroup
	expect_counts_on ckx2 "$before"
	expect_ok pm rm -f -t 0 ckx ckx2
	rm -f "$tar"
	trap - EXIT
}

# A container of a pod, exported, restored into another pod: podman checks first that the
# runtime can (`restore --lsm-mount-context` without its value prints "flag needs an
# argument"). The pods' infra containers run the test image's sleep (no pause image
# here). As for a second copy, runc 1.1.5 leaves the restored init in the cgroup the
# checkpoint names, the first pod's (shown, not asserted).
t_checkpoint_pod() {
	local before pod1 pod2 p cg d pod_args=(--network none --infra-image "$PAUSE_IMG")
	e2e_systemd || pod_args+=(--cgroup-parent "/$E2E_CGROUP")
	trap 'pm pod rm -f -t 0 --ignore ckpod1 ckpod2 >/dev/null 2>&1; pm rmi --ignore "$PAUSE_IMG" >/dev/null 2>&1; rm -f "$E2E_TMP/ckp.tar.gz"' EXIT
	expect_ok pm import --change 'CMD ["/bin/sleep", "1000000"]' "$E2E_TMP/rootfs.tar" "$PAUSE_IMG"
	expect_ok pm pod create --name ckpod1 "${pod_args[@]}"
	pod1=$OUT
	expect_ok pm run -d --pod ckpod1 --name ckp --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$IMG" "${COUNTER[@]}"
	wait_until 30 "ckp counts to 2" count_past ckp 1
	timed pm container checkpoint --export="$E2E_TMP/ckp.tar.gz" ckp
	before=$(last_count ckp)
	echo "  ok: it had counted to $before"
	expect_ok pm pod create --name ckpod2 "${pod_args[@]}"
	expect_ok pm pod start ckpod2
	# podman 4.3.1 finds the pod by its id only ("pod with ID ckpod2 not found" for its name).
	pod2=$(pm pod inspect -f '{{.Id}}' ckpod2)
	timed pm container restore --import="$E2E_TMP/ckp.tar.gz" --pod "$pod2" --name ckp2
	expect_eq "$(insp '{{.Pod}}' ckp2)" "$pod2" "the restored container's pod"
	expect_restored_ok ckp2 any-cgroup
	expect_counts_on ckp2 "$before"
	e2e_systemd && cg=$(e2e_cgroup_of "$(insp '{{.State.Pid}}' ckp2)")
	expect_ok pm pod rm -f -t 0 ckpod1 ckpod2
	if e2e_systemd; then
		for p in "$pod1" "$pod2"; do
			[ -z "$(systemctl list-units --all --plain --no-legend "machine-libpod_pod_$p.slice")" ] ||
				fail "the pod's slice machine-libpod_pod_$p.slice is left"
		done
		echo "  ok: the pods' slices are gone"
		# A restored init in the checkpoint's cgroup (runc): CRIU made that cgroup again, the
		# first container's scope in the first pod's slice, which no unit owns, so nobody
		# removes it: the directories go here (the leftovers check would find them).
		for d in "$cg" "${cg%/*}"; do
			case $d in /machine.slice/machine-libpod_pod_"$pod1".slice*) ;; *) continue ;; esac
			[ -d "/sys/fs/cgroup$d" ] || continue
			echo "  note: removing $d: CRIU made it for the restored init, no unit owns it"
			rmdir "/sys/fs/cgroup$d" || fail "cannot remove /sys/fs/cgroup$d"
		done
	fi
	expect_ok pm rmi "$PAUSE_IMG"
	rm -f "$E2E_TMP/ckp.tar.gz"
	trap - EXIT
}

t_events() {
	expect_ok pm events --stream=false --format '{{.Name}} {{.Status}}'
	expect_contains "web start"
	expect_contains "web pause"
	expect_contains "web unpause"
	expect_contains "web died"
	expect_contains "oomer died"
}

t_rm() {
	local pid
	# The containers that the steps E2E_STEPS selected made.
	if e2e_selected podman/oom; then expect_ok pm rm oomer; fi
	if e2e_selected podman/wait-restart; then expect_ok pm rm waiter; fi
	if e2e_selected podman/run-d; then
		pid=$(insp '{{.State.Pid}}' web)
		expect_fail pm rm web
		expect_ok pm rm -f web
		wait_until 10 "pid $pid gone" sh -c "! [ -d /proc/$pid ]"
	fi
	expect_ok pm ps -a -q
	expect_out ""
	expect_ok pm rmi "$IMG"
	umount_storage
	remove_blob_cache
}

step setup t_setup
step image t_image
step run t_run
step run-it t_run_tty
step run-d t_run_d
step inspect t_inspect
step exec t_exec
step exec-it t_exec_tty
step logs t_logs
step top t_top
step stats t_stats
step pause-unpause t_pause
step stop-start t_stop
step kill t_kill
step wait-restart t_wait_restart
step userns t_userns
step preserve-fds t_preserve_fds
step oom t_oom
step runtime-error t_runtime_error
step checkpoint-probes t_checkpoint_probes
criu_step checkpoint-restore t_checkpoint_restore
criu_step checkpoint-leave-running t_checkpoint_leave_running
criu_step checkpoint-export-import t_checkpoint_export_import
criu_step checkpoint-pod t_checkpoint_pod
step events t_events
step rm t_rm
e2e_finish
