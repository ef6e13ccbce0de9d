#!/usr/bin/env bash
# hack/e2e/containerd.sh: containerd (ctr + the runc v2 shim) drives tong (or
# runc, with RUNTIME=runc).
#
# Starts a private containerd (config, root, state and sockets in a temp dir;
# CRI disabled), imports a busybox image from a locally built OCI archive (no
# registry), and runs containers with `ctr run --runc-binary <abs path of the
# runtime>` in the cgroup /tong-e2e-ctr-<pid>/<id> (with E2E_CGROUP_DRIVER=systemd:
# `--runc-systemd-cgroup --cgroup system.slice:tong-e2e-ctr-<pid>:<id>`, the scope
# tong-e2e-ctr-<pid>-<id>.scope), each step asserted.
# Finally removes everything and checks nothing is left.
# See hack/e2e/README.md for the environment variables.
set -uo pipefail
# shellcheck source=hack/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_need containerd containerd
e2e_need script bsdutils
# The systemd driver's units: system.slice/tong-e2e-ctr-<pid>-<id>.scope.
SD_PREFIX=tong-e2e-ctr-$$
E2E_UNITS=("$SD_PREFIX-*.scope")
# E2E_STEPS: the steps that always run, and those about cgroups and units ("cgroup").
E2E_BASE_STEPS="daemon image cleanup stop-daemon"
E2E_CGROUP_STEPS="run-rm run-d task-exec task-ps task-metrics task-pause-resume
	task-kill-delete pod-shared-pid-ns task-start-again resources failing-container events"
e2e_init ctr
# What containerd and its shims make outside the temp dir (shim sockets).
e2e_track_dirs /run/containerd /opt/containerd

NS=tong-e2e
IMG=docker.io/tong-e2e/busybox:latest
SOCK=$E2E_TMP/containerd.sock
CTRD_PIDFILE=$E2E_TMP/containerd.pid
CTRD_LOG=$E2E_TMP/containerd.log
TASKS=$E2E_TMP/state/io.containerd.runtime.v2.task/$NS
RUN_OPTS=(--runc-binary "$RUNTIME_BIN" --runc-root "$E2E_TMP/runtime-root" --fifo-dir "$E2E_TMP/fifo")
# SystemdCgroup = true in the runc v2 shim's options: ctr sets it per container (the
# config's runtime options are CRI's, disabled here).
if e2e_systemd; then RUN_OPTS+=(--runc-systemd-cgroup); fi
# cgroup_of ID: the --cgroup of container ID.
cgroup_of() {
	if e2e_systemd; then echo "system.slice:$SD_PREFIX:$1"; else echo "/$E2E_CGROUP/$1"; fi
}

ctr_() { timeout "$E2E_CMD_TIMEOUT" ctr --address "$SOCK" --namespace "$NS" "$@"; }
# ctr_run ID [RUN FLAGS...] -- CMD...: `ctr run` of the test image as ID.
ctr_run() {
	local id=$1 flags=()
	shift
	while [ "$1" != -- ]; do
		flags+=("$1")
		shift
	done
	shift
	ctr_ run "${RUN_OPTS[@]}" --cgroup "$(cgroup_of "$id")" "${flags[@]}" "$IMG" "$id" "$@"
}

# ------------------------------------------------------------ daemon

stop_containerd() {
	[ -f "$CTRD_PIDFILE" ] || return 0
	if [ -f "$E2E_TMP/events.pid" ]; then
		kill "$(cat "$E2E_TMP/events.pid")" 2>/dev/null || true
		rm -f "$E2E_TMP/events.pid"
	fi
	e2e_stop_pid "$CTRD_PIDFILE"
	rm -f "$CTRD_PIDFILE"
}
E2E_CLEANUP_FNS+=(stop_containerd)

start_containerd() {
	cat >"$E2E_TMP/config.toml" <<EOF
version = 2
root = "$E2E_TMP/root"
state = "$E2E_TMP/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$E2E_TMP/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_TMP/opt"
EOF
	echo "+ containerd --config $E2E_TMP/config.toml"
	setsid containerd --config "$E2E_TMP/config.toml" >"$CTRD_LOG" 2>&1 </dev/null &
	echo $! >"$CTRD_PIDFILE"
	wait_until 60 "containerd answers on $SOCK" ctr_ version
	run_cmd ctr_ version
	expect_contains "Server:"
	# Every task event, for the events step.
	setsid ctr --address "$SOCK" --namespace "$NS" events >"$E2E_TMP/events.txt" 2>&1 </dev/null &
	echo $! >"$E2E_TMP/events.pid"
}

e2e_diagnose() {
	local f
	echo "--- containerd log (last 10 lines)"
	tail -n 10 "$CTRD_LOG" 2>/dev/null
	for f in "$TASKS"/*/log.json; do
		[ -s "$f" ] || continue
		echo "--- runtime log $f"
		tail -n 10 "$f"
	done
	# CRIU's logs of a checkpoint or restore: the shim copies a failed dump's to
	# criu-dump.log in the bundle; --work-path dirs keep theirs.
	find "$E2E_TMP" \( -name criu-dump.log -o -name dump.log -o -name restore.log \) 2>/dev/null |
		while read -r f; do
			echo "--- CRIU log $f (errors and warnings, and its last lines)"
			grep -E '^(Error|Warn)|[Ee]rror' "$f" | tail -n 10
			tail -n 3 "$f"
		done
}

e2e_engine_leftovers() {
	local left
	# seccomp@cache is tong's compiled-seccomp cache, kept across containers by design.
	# (Neither dir exists when no step ran a container: E2E_STEPS, or steps skipped here.)
	left=$(find "$E2E_TMP/runtime-root" -mindepth 2 -maxdepth 2 ! -name 'seccomp@cache' 2>/dev/null
		find "$TASKS" -mindepth 1 -maxdepth 1 2>/dev/null || true)
	[ -z "$left" ] || fail "runtime or task state left: $left"
	echo "  ok: no runtime or task state left"
}

# ------------------------------------------------------------ helpers

task_status() { ctr_ task ls | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { ctr_ task ls | awk -v id="$1" '$1 == id { print $2 }'; }
status_is() { [ "$(task_status "$1")" = "$2" ]; }
# cgfile CONTROLLER ID FILE: a file of task ID's cgroup (systemd driver: FILE of the
# cgroup v2 its init is in; CONTROLLER is not used).
cgfile() {
	if e2e_systemd; then
		e2e_cgfile "$(task_pid "$2")" "$3"
	else
		cat "/sys/fs/cgroup/$1/$E2E_CGROUP/$2/$3"
	fi
}
frozen() {
	if e2e_systemd; then e2e_frozen "$(task_pid "$1")"; else cgfile freezer "$1" freezer.state; fi
}
scope() { echo "$SD_PREFIX-$1.scope"; }
# remove ID: the task (killed if need be) and the container.
remove() {
	ctr_ task kill -s KILL "$1" >/dev/null 2>&1 || true
	wait_until 10 "$1 stopped" sh -c "! ctr --address '$SOCK' --namespace '$NS' task ls | grep -q '^$1 .*RUNNING'"
	ctr_ task delete "$1" >/dev/null 2>&1 || true
	expect_ok ctr_ container delete "$1"
}

# ------------------------------------------------------------ checkpoint/restore helpers

# The counter: appends 0, 1, 2, ... to /tmp/count in its rootfs, one a second, from its
# shell's memory alone (a task restored by `ctr containers restore` has no output
# anyone reads: ctr exits once it started it).
# shellcheck disable=SC2016 # the container's shell expands them
COUNTER=(sh -c 'i=0; while :; do echo $i >>/tmp/count; i=$((i+1)); sleep 1; done')
EXEC_N=0
counts() {
	EXEC_N=$((EXEC_N + 1))
	ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id "count$EXEC_N" "$1" cat /tmp/count 2>/dev/null | grep -xE '[0-9]+' || true
}
last_count() { counts "$1" | tail -n 1; }
count_past() {
	local n
	n=$(last_count "$1")
	[ -n "$n" ] && [ "$n" -gt "$2" ]
}
start_counter() {
	expect_ok ctr_run "$1" -d -- "${COUNTER[@]}"
	wait_until 10 "$1 RUNNING" status_is "$1" RUNNING
	wait_until 30 "$1 counts to 2" count_past "$1" 1
}
# expect_counts_on ID BEFORE: ID counts on from BEFORE, a number it had written before
# its checkpoint: two numbers past it, and /tmp/count is one run of consecutive numbers
# from 0 (a restart at 0, a repeat or a gap breaks it).
expect_counts_on() {
	local id=$1 before=$2 nums
	wait_until 60 "$id counts past $((before + 1))" count_past "$id" $((before + 1))
	nums=$(counts "$id" | tr '\n' ' ')
	echo "  $id wrote: $nums"
	awk '{
		for (i = 1; i <= NF; i++) {
			if ($i != i - 1) { print "not counting on from 0: " $i " as number " i; bad = 1; break }
		}
	}
	END { exit bad }' <<<"$nums" || fail "$id does not count on from $before"
	echo "  ok: $id counts on from $before (to $(last_count "$id"))"
}
# expect_running_ok ID: task ID runs in its own cgroup (systemd: its scope, active), not
# frozen, its init the counter.
expect_running_ok() {
	local id=$1 pid
	expect_eq "$(task_status "$id")" RUNNING "task status"
	pid=$(task_pid "$id")
	[ -d "/proc/$pid" ] || fail "task pid $pid is not live"
	if e2e_systemd; then
		e2e_expect_unit "$pid" "$(scope "$id")"
	else
		run_cmd grep ':memory:' "/proc/$pid/cgroup"
		expect_out "4:memory:/$E2E_CGROUP/$id"
	fi
	expect_eq "$(frozen "$id")" THAWED "freezer state"
	expect_match "$(tr '\0' ' ' <"/proc/$pid/cmdline")" "while :" "the init's command line"
}
# forget ID [IMAGE...]: (a step's EXIT trap) task, container and images gone, quietly.
forget() {
	local id=$1
	shift
	ctr_ task kill -s KILL "$id" >/dev/null 2>&1
	ctr_ task delete -f "$id" >/dev/null 2>&1
	ctr_ container delete "$id" >/dev/null 2>&1
	[ $# = 0 ] || ctr_ images rm "$@" >/dev/null 2>&1
	return 0
}

# ------------------------------------------------------------ steps

t_daemon() { start_containerd; }

t_image() {
	e2e_rootfs_tar "$E2E_TMP/rootfs.tar"
	e2e_oci_archive "$E2E_TMP/rootfs.tar" "$E2E_TMP/image.tar" "$IMG" || fail "cannot build the OCI archive"
	expect_ok ctr_ images import "$E2E_TMP/image.tar"
	expect_ok ctr_ images ls -q
	expect_contains "$IMG"
}

t_run_rm() {
	expect_ok ctr_run hello --rm -- echo hello from ctr
	expect_out "hello from ctr"
	expect_rc 3 ctr_run three --rm -- sh -c 'exit 3'
	expect_ok ctr_ containers ls -q
	expect_out ""
	expect_ok ctr_run ids --rm --cwd /tmp --env FOO=bar -- sh -c 'echo "$FOO $(pwd) $(id -u)"'
	expect_out "bar /tmp 0"
}

t_run_tty() {
	expect_ok in_tty ctr --address "$SOCK" --namespace "$NS" run "${RUN_OPTS[@]}" \
		--cgroup "$(cgroup_of tty)" --rm -t "$IMG" tty sh -c 'tty; echo in-a-tty; sleep 0.5'
	expect_contains "/dev/pts/0"
	expect_contains "in-a-tty"
}

t_run_d() {
	local pid
	expect_ok ctr_run web -d -- sh -c 'trap "echo got-TERM; exit 42" TERM; while :; do sleep 0.1; done'
	wait_until 10 "web RUNNING" status_is web RUNNING
	expect_ok ctr_ task ls
	expect_contains "web"
	pid=$(task_pid web)
	[ -d "/proc/$pid" ] || fail "task pid $pid is not live"
	if e2e_systemd; then
		run_cmd cat "/proc/$pid/cgroup"
		expect_out "0::/system.slice/$(scope web)"
		e2e_expect_unit "$pid" "$(scope web)"
		e2e_expect_unit_props "$(scope web)" Slice=system.slice Delegate=yes
	else
		run_cmd grep ':memory:' "/proc/$pid/cgroup"
		expect_out "4:memory:/$E2E_CGROUP/web"
	fi
	expect_ok ctr_ containers ls -q
	expect_out "web"
}

t_exec() {
	expect_ok ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id e1 --cwd /tmp --user 1000 web sh -c 'echo "$(pwd) $(id -u)"'
	expect_out "/tmp 1000"
	expect_rc 5 ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id e2 web sh -c 'exit 5'
	expect_ok ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id e3 web sh -c 'ps -o pid,args | grep -v ps'
	expect_contains "1 sh -c trap"
	expect_fail ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id e4 web /no/such/binary
	expect_contains 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
}

t_exec_tty() {
	expect_ok in_tty ctr --address "$SOCK" --namespace "$NS" task exec --fifo-dir "$E2E_TMP/fifo" -t --exec-id t1 web \
		sh -c 'tty; echo in-a-tty; sleep 0.5'
	expect_contains "/dev/pts/"
	expect_contains "in-a-tty"
}

t_ps() {
	local pid
	expect_ok ctr_ task exec --fifo-dir "$E2E_TMP/fifo" -d --exec-id bg web sleep 77
	pid=$(task_pid web)
	expect_ok ctr_ task ps web
	expect_contains "$pid"
	[ "$(printf '%s\n' "$OUT" | tail -n +2 | wc -l)" -ge 2 ] || fail "task ps lists fewer than 2 processes"
	echo "  ok: task ps lists the init ($pid) and the exec'd sleep"
}

t_metrics() {
	local mem
	expect_ok ctr_ task metrics web
	mem=$(printf '%s\n' "$OUT" | awk '$1 == "memory.usage_in_bytes" || $1 == "memory.usage" { print $2 }')
	expect_match "$mem" '^[1-9][0-9]*$' "memory usage in bytes"
	expect_contains "pids.current"
}

t_pause_resume() {
	expect_ok ctr_ task pause web
	wait_until 10 "web PAUSED" status_is web PAUSED
	expect_eq "$(frozen web)" FROZEN "freezer state"
	expect_ok ctr_ task resume web
	wait_until 10 "web RUNNING" status_is web RUNNING
	expect_eq "$(frozen web)" THAWED "freezer state"
	expect_ok ctr_ task exec --fifo-dir "$E2E_TMP/fifo" --exec-id afterpause web echo alive
	expect_out "alive"
}

t_kill_delete() {
	expect_ok ctr_ task kill web # SIGTERM: the trap runs
	wait_until 10 "web STOPPED" status_is web STOPPED
	expect_ok ctr_ task delete web
	expect_contains "42"
	expect_ok ctr_ container delete web
	expect_ok ctr_run victim -d -- sh -c 'trap "" TERM; while :; do sleep 0.1; done'
	wait_until 10 "victim RUNNING" status_is victim RUNNING
	expect_ok ctr_ task kill -s KILL victim
	wait_until 10 "victim STOPPED" status_is victim STOPPED
	expect_ok ctr_ task delete victim
	expect_contains "137"
	expect_ok ctr_ container delete victim
	expect_ok ctr_run many -d -- sh -c 'sleep 1000 & sleep 1000 & wait'
	wait_until 10 "many RUNNING" status_is many RUNNING
	expect_ok ctr_ task kill -a -s KILL many
	wait_until 10 "many STOPPED" status_is many STOPPED
	expect_ok ctr_ task delete many
	expect_ok ctr_ container delete many
}

t_pod_shared_pid_ns() {
	# A Kubernetes pod without CRI: a pause container holds the pid namespace and an app
	# container joins it. When the app's init exits, the shim runs `kill --all ID KILL` on
	# the stopped container (it shares a pid namespace), which must reach the child the
	# init left behind; then the task deletes and its cgroup goes.
	local pause_pid
	expect_ok ctr_run pod-pause -d -- sleep 1000
	wait_until 10 "pod-pause RUNNING" status_is pod-pause RUNNING
	pause_pid=$(task_pid pod-pause)
	expect_ok ctr_run pod-app -d --with-ns "pid:/proc/$pause_pid/ns/pid" -- sh -c 'sleep 1000 & echo left-a-child; exit 0'
	wait_until 10 "pod-app STOPPED" status_is pod-app STOPPED
	local procs=/sys/fs/cgroup/pids/$E2E_CGROUP/pod-app/cgroup.procs
	[ -e /sys/fs/cgroup/cgroup.controllers ] && procs=/sys/fs/cgroup/$E2E_CGROUP/pod-app/cgroup.procs
	e2e_systemd && procs=/sys/fs/cgroup/system.slice/$(scope pod-app)/cgroup.procs
	wait_until 10 "the app's leftover child gone from its cgroup" \
		sh -c "[ -z \"\$(cat $procs 2>/dev/null)\" ]"
	expect_ok ctr_ task delete pod-app
	expect_ok ctr_ container delete pod-app
	local h
	if e2e_systemd; then
		[ ! -d "${procs%/*}" ] || fail "cgroup ${procs%/*} left"
		[ -z "$(systemctl list-units --all --plain --no-legend "$(scope pod-app)")" ] ||
			fail "unit $(scope pod-app) left: $(systemctl list-units --all --plain --no-legend "$(scope pod-app)")"
	else
		for h in pids memory cpu unified .; do
			[ ! -d "/sys/fs/cgroup/$h/$E2E_CGROUP/pod-app" ] || fail "cgroup $h/$E2E_CGROUP/pod-app left"
		done
	fi
	echo "  ok: the app's cgroups are gone"
	status_is pod-pause RUNNING || fail "the pause container died with the app"
	remove pod-pause
}

t_task_start_again() {
	# A container whose task ended gets a new task from `ctr task start`
	# (a new create and start, with the runtime options the container keeps).
	expect_ok ctr_run again -d -- sh -c 'echo run-$$; exit 6'
	wait_until 10 "again STOPPED" status_is again STOPPED
	expect_ok ctr_ task delete again
	expect_contains "6"
	# Attached, `task start` waits for the task, deletes it, exits with its status.
	expect_rc 6 ctr_ task start --fifo-dir "$E2E_TMP/fifo" again
	expect_contains "run-1"
	expect_ok ctr_ container delete again
}

t_resources() {
	local hd=$E2E_TMP/hostdir
	mkdir -p "$hd"
	echo from-host >"$hd/f"
	expect_rc 137 ctr_run oomer --rm --memory-limit 33554432 -- "${E2E_OOM_CMD[@]}"
	expect_ok ctr_run lim -d --memory-limit 67108864 --cpus 0.5 -- sleep 1000
	wait_until 10 "lim RUNNING" status_is lim RUNNING
	if e2e_systemd; then
		expect_eq "$(cgfile memory lim memory.max)" 67108864 "memory.max"
		expect_eq "$(cgfile cpu lim cpu.max)" "50000 100000" "cpu.max"
		e2e_expect_unit "$(task_pid lim)" "$(scope lim)"
		e2e_expect_unit_props "$(scope lim)" MemoryMax=67108864 CPUQuotaPerSecUSec=500ms
	else
		expect_eq "$(cgfile memory lim memory.limit_in_bytes)" 67108864 "memory.limit_in_bytes"
		expect_eq "$(cgfile cpu lim cpu.cfs_quota_us) $(cgfile cpu lim cpu.cfs_period_us)" "50000 100000" "cpu quota and period"
	fi
	remove lim
	expect_ok ctr_run mnt --rm --mount "type=bind,src=$hd,dst=/data,options=rbind:ro" -- cat /data/f
	expect_out "from-host"
	expect_fail ctr_run mnt2 --rm --mount "type=bind,src=$hd,dst=/data,options=rbind:ro" -- touch /data/g
	expect_contains "Read-only file system"
	expect_fail ctr_run ro --rm --read-only -- touch /x
	expect_contains "Read-only file system"
}

t_security() {
	expect_fail ctr_run sec --rm --seccomp -- sh -c 'grep Seccomp: /proc/self/status; unshare -U true'
	expect_contains $'Seccomp:\t2'
	expect_contains "Operation not permitted"
	expect_ok ctr_run nosec --rm -- sh -c 'grep Seccomp: /proc/self/status; unshare -U true && echo unshared'
	expect_contains "unshared"
	expect_fail ctr_run nocap --rm --cap-drop CAP_CHOWN -- chown 1000 /tmp
	expect_contains "Operation not permitted"
}

t_failing_container() {
	# The shim reads the runtime's --log JSON and puts its last error in
	# the answer ctr prints.
	expect_fail ctr_run bad --rm -- /no/such/binary
	expect_contains 'OCI runtime create failed'
	expect_contains 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
	expect_fail ctr_run bad2 --rm -- not-a-command
	expect_contains 'exec: "not-a-command": executable file not found in $PATH'
	expect_ok ctr_ containers ls -q
	expect_out ""
}

# `ctr task checkpoint`: the runtime's checkpoint (leaving the task running) into a
# checkpoint image in the content store, and into --image-path/--work-path dirs; with
# --exit, the task stops. ctr 1.6 cannot restore such an image: `ctr run` has no
# --checkpoint flag (its code reads one it never defines) and `ctr containers restore`
# wants the annotations `ctr containers checkpoint` writes ("image name not found in
# index"), with runc as with tong.
t_task_checkpoint() {
	local ref ref2 before
	# Each step's task, container and images go when it ends, whatever it ends with.
	trap 'forget tck $(ctr_ images ls -q | grep "^containerd.io/checkpoint/tck:"); rm -rf "$E2E_TMP"/tck-*' EXIT
	start_counter tck
	timed ctr_ task checkpoint tck
	ref=$(printf '%s\n' "$OUT" | tail -n 1)
	expect_match "$ref" '^containerd.io/checkpoint/tck:' "checkpoint image name"
	expect_ok ctr_ images ls
	expect_contains "$ref"
	expect_contains "containerd.io/checkpoint=true"
	# ctr paused the task for the checkpoint and resumed it.
	expect_running_ok tck
	before=$(last_count tck)
	expect_counts_on tck "$before"
	expect_fail ctr_ containers restore --live tck-restored "$ref"
	expect_contains "image name not found in index"
	expect_ok ctr_ containers ls -q
	expect_not_contains "tck-restored"
	# Gone with its blobs now: the next checkpoint writes the same spec blob, which
	# containerd refuses while it exists ("content sha256:...: already exists").
	expect_ok ctr_ images rm --sync "$ref"
	# Straight into directories: CRIU's images and its dump.log.
	timed ctr_ task checkpoint --image-path "$E2E_TMP/tck-img" --work-path "$E2E_TMP/tck-work" tck
	[ -s "$E2E_TMP/tck-img/inventory.img" ] || fail "no inventory.img in --image-path: $(ls "$E2E_TMP/tck-img" 2>&1)"
	[ -s "$E2E_TMP/tck-work/dump.log" ] || fail "no dump.log in --work-path: $(ls "$E2E_TMP/tck-work" 2>&1)"
	echo "  ok: --image-path has $(find "$E2E_TMP/tck-img" -name '*.img' | wc -l) images, --work-path dump.log"
	expect_running_ok tck
	# --exit: the task stops after its checkpoint.
	timed ctr_ task checkpoint --exit tck
	ref2=$(printf '%s\n' "$OUT" | tail -n 1)
	expect_match "$ref2" '^containerd.io/checkpoint/tck:' "checkpoint image name"
	wait_until 10 "tck STOPPED" status_is tck STOPPED
	expect_ok ctr_ task delete tck
	expect_contains "exit code 137" # CRIU killed it after the dump
	expect_ok ctr_ container delete tck
	expect_ok ctr_ images rm "$ref2"
	rm -rf "$E2E_TMP/tck-img" "$E2E_TMP/tck-work"
	trap - EXIT
}

# `ctr containers checkpoint --task --rw` (ctr pauses the task, the runtime checkpoints it
# leaving it running, ctr resumes it), the task and container removed, then `ctr
# containers restore --live --rw`: the same container again, its task restored by the
# runtime from the checkpoint image, counting on.
t_container_checkpoint_restore() {
	local before
	trap 'forget cck tong-e2e/checkpoint:cck' EXIT
	start_counter cck
	timed ctr_ containers checkpoint --task --rw cck tong-e2e/checkpoint:cck
	expect_ok ctr_ images ls -q
	expect_contains "tong-e2e/checkpoint:cck"
	expect_running_ok cck
	before=$(last_count cck)
	remove cck
	timed ctr_ containers restore --live --rw cck tong-e2e/checkpoint:cck
	wait_until 10 "cck RUNNING" status_is cck RUNNING
	expect_running_ok cck
	expect_counts_on cck "$before"
	remove cck
	expect_ok ctr_ images rm tong-e2e/checkpoint:cck
	trap - EXIT
}

t_events() {
	local ev=$E2E_TMP/events.txt
	# The topics seen, once each (the whole stream is long).
	run_cmd sh -c "awk '{ print \$6 }' '$ev' | grep '^/tasks/' | sort -u"
	expect_contains "/tasks/start"
	expect_contains "/tasks/exit"
	expect_contains "/tasks/oom"
	expect_contains "/tasks/paused"
	expect_contains "/tasks/resumed"
	expect_contains "/tasks/exec-added"
}

t_cleanup() {
	local c
	for c in $(ctr_ containers ls -q); do remove "$c"; done
	expect_ok ctr_ containers ls -q
	expect_out ""
	expect_ok ctr_ images rm "$IMG"
}

t_stop_daemon() {
	local pid
	pid=$(cat "$CTRD_PIDFILE")
	kill "$(cat "$E2E_TMP/events.pid")" 2>/dev/null || true
	stop_containerd
	! kill -0 "$pid" 2>/dev/null || fail "containerd ($pid) still running"
	echo "  ok: containerd stopped"
}

step daemon t_daemon
step image t_image
step run-rm t_run_rm
step run-tty t_run_tty
step run-d t_run_d
step task-exec t_exec
step task-exec-tty t_exec_tty
step task-ps t_ps
step task-metrics t_metrics
step task-pause-resume t_pause_resume
step task-kill-delete t_kill_delete
step pod-shared-pid-ns t_pod_shared_pid_ns
step task-start-again t_task_start_again
step resources t_resources
step security t_security
step failing-container t_failing_container
criu_step task-checkpoint t_task_checkpoint
criu_step container-checkpoint-restore t_container_checkpoint_restore
step events t_events
step cleanup t_cleanup
step stop-daemon t_stop_daemon
e2e_finish
