#!/usr/bin/env bash
# hack/e2e/docker.sh: Debian's dockerd drives tong (or runc, with RUNTIME=runc).
#
# Starts a private dockerd (data-root, exec-root, pidfile and socket in a temp
# dir; cgroupfs driver with the cgroup parent /tong-e2e-docker-<pid>, or with
# E2E_CGROUP_DRIVER=systemd the systemd driver and its defaults (scopes
# docker-<id>.scope in system.slice); a bridge of its own; no iptables),
# registers tong by absolute path as the runtime
# `tong` and makes it the default, imports a busybox image from a local
# tarball (no registry), and walks through what a docker user does, each step
# asserted. Finally removes everything and checks nothing is left.
# See hack/e2e/README.md for the environment variables (RUNTIME, TONG,
# E2E_KNOWN_FAILURES, ...).
set -uo pipefail
# shellcheck source=hack/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_need dockerd docker.io
e2e_need script bsdutils
# The systemd driver's units: docker-<id>.scope (the prefix is docker's, fixed).
E2E_UNITS=('docker-*.scope')
# E2E_STEPS: the steps that always run, and those about cgroups and units ("cgroup": each
# container's scope made, limited, updated, frozen, stopped, restarted under the same
# name, removed; exec and top in it; device and cpuset rules; OOM and pids limits).
E2E_BASE_STEPS="daemon info image rm-all stop-daemon"
E2E_CGROUP_STEPS="run-rm run-d-httpd inspect exec top stats pause-unpause update
	stop-sigterm-trap stop-timeout start-stopped restart rm more-options
	health-restart-policy oom pids-limit events"
e2e_init docker
# What dockerd and its containerd make outside the temp dir.
e2e_track_dirs /run/docker /run/containerd /etc/docker/key.json

DOCKER=${DOCKER:-/usr/bin/docker} # the docker.io client, not another one on PATH
IMG=tong-e2e/busybox:latest
BRIDGE=tonge2e$$
BRIDGE=${BRIDGE:0:15}
# The first 172.31.X.0/24 (X from 254 down) that no route on this host uses.
free_subnet() {
	local x routes
	routes=$'\n'$(ip -4 route show)
	for x in $(seq 254 -1 200); do
		case $routes in
		*$'\n'"172.31.$x."*) ;;
		*)
			echo "172.31.$x.1/24"
			return
			;;
		esac
	done
	e2e_die "no free 172.31.X.0/24 subnet for the bridge"
}
BRIDGE_CIDR=${E2E_BRIDGE_CIDR:-$(free_subnet)}
export DOCKER_HOST=unix://$E2E_TMP/docker.sock
DOCKERD_PIDFILE=$E2E_TMP/dockerd.pid
DOCKERD_LOG=$E2E_TMP/dockerd.log
TASKS=$E2E_TMP/exec/containerd/daemon/io.containerd.runtime.v2.task/moby

dk() { timeout "$E2E_CMD_TIMEOUT" "$DOCKER" "$@"; }

# ------------------------------------------------------------ daemon

stop_dockerd() {
	if [ -f "$E2E_TMP/events.pid" ]; then
		kill "$(cat "$E2E_TMP/events.pid")" 2>/dev/null || true
		rm -f "$E2E_TMP/events.pid"
	fi
	e2e_stop_pid "$DOCKERD_PIDFILE" 30
}

remove_bridge() {
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}
E2E_CLEANUP_FNS+=(stop_dockerd remove_bridge)

start_dockerd() {
	local args
	ip link add "$BRIDGE" type bridge || fail "cannot create bridge $BRIDGE"
	ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	args=(
		--data-root "$E2E_TMP/data" --exec-root "$E2E_TMP/exec"
		--pidfile "$DOCKERD_PIDFILE" -H "$DOCKER_HOST"
		--bridge "$BRIDGE" --iptables=false --ip6tables=false --ip-masq=false
		--default-ulimit nofile=1024:1024
		--storage-driver overlay2
		--config-file "$E2E_TMP/daemon.json"
	)
	# Its own config file: the host's /etc/docker/daemon.json is not read, and
	# the trust key goes to the temp dir instead of /etc/docker/key.json. tong is
	# registered there as a user would (README, "Registering tong"): under "runtimes".
	if [ "$RUNTIME" = tong ]; then
		cat >"$E2E_TMP/daemon.json" <<EOF
{
  "deprecated-key-path": "$E2E_TMP/key.json",
  "runtimes": {"tong": {"path": "$RUNTIME_BIN"}},
  "default-runtime": "tong"
}
EOF
	else
		printf '{"deprecated-key-path": "%s", "default-runtime": "runc"}\n' "$E2E_TMP/key.json" >"$E2E_TMP/daemon.json"
	fi
	if e2e_systemd; then
		# Its default cgroup parent then: system.slice.
		args+=(--exec-opt native.cgroupdriver=systemd)
	else
		args+=(--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$E2E_CGROUP")
	fi
	echo "+ dockerd ${args[*]}"
	# Its own session, so a terminal's signals don't reach it.
	setsid /usr/sbin/dockerd "${args[@]}" >"$DOCKERD_LOG" 2>&1 </dev/null &
	wait_until 60 "dockerd answers on $DOCKER_HOST" dk version
	run_cmd dk info --format '{{.DefaultRuntime}} {{.CgroupDriver}} {{.ServerVersion}}'
	expect_contains "$RUNTIME $E2E_CGROUP_DRIVER"
	# Every container event, for the events step.
	setsid "$DOCKER" events --filter type=container --format '{{.Actor.Attributes.name}} {{.Action}} {{.Actor.ID}}' \
		>"$E2E_TMP/events.txt" 2>&1 </dev/null &
	echo $! >"$E2E_TMP/events.pid"
}

# On a failing step: the end of dockerd's log and the runtime's log of every
# container (dockerd passes --log <task dir>/log.json --log-format json).
e2e_diagnose() {
	local f
	echo "--- dockerd log (last 15 lines)"
	tail -n 15 "$DOCKERD_LOG" 2>/dev/null
	for f in "$TASKS"/*/log.json; do
		[ -s "$f" ] || continue
		echo "--- runtime log $f"
		tail -n 10 "$f"
	done
}

# The ids of this run's containers (for the systemd driver's leftover checks).
e2e_container_ids() { awk '{ print $NF }' "$E2E_TMP/events.txt" 2>/dev/null | sort -u; }

e2e_engine_leftovers() {
	[ ! -e "$DOCKERD_PIDFILE" ] || fail "dockerd left its pidfile"
	local left
	# seccomp@cache is tong's compiled-seccomp cache, kept across containers by design.
	left=$(find "$E2E_TMP/exec/runtime-runc" "$TASKS" -mindepth 2 -maxdepth 2 ! -name 'seccomp@cache' 2>/dev/null)
	[ -z "$left" ] || fail "runtime state left: $left"
	echo "  ok: no runtime state dir left"
	remove_bridge
	echo "  ok: bridge $BRIDGE removed"
}

# ------------------------------------------------------------ helpers

insp() { dk inspect -f "$1" "$2"; }
cid() { insp '{{.Id}}' "$1"; }
# cg CONTROLLER NAME FILE: a file of container NAME's cgroup, seen from the host
# (systemd driver: FILE of the cgroup v2 its init is in; CONTROLLER is not used).
cg() {
	local id
	if e2e_systemd; then
		e2e_cgfile "$(insp '{{.State.Pid}}' "$2")" "$3"
		return
	fi
	id=$(cid "$2")
	cat "/sys/fs/cgroup/$1/$E2E_CGROUP/$id/$3"
}
# frozen NAME: FROZEN or THAWED.
frozen() {
	if e2e_systemd; then
		e2e_frozen "$(insp '{{.State.Pid}}' "$1")"
	else
		cg freezer "$1" freezer.state
	fi
}
# scope NAME: the systemd driver's unit for container NAME.
scope() { echo "docker-$(cid "$1").scope"; }
# shellcheck disable=SC2120 # expect_fail fetch 2
fetch() { timeout "${1:-10}" /bin/busybox wget -q -O - "http://127.0.0.1:$PORT/"; }
page_served() { [ "$(fetch)" = "hello from the tong e2e image" ]; }
exited_with() { [ "$(insp '{{.State.Status}} {{.State.ExitCode}}' "$1")" = "exited $2" ]; }

# ------------------------------------------------------------ steps

t_daemon() { start_dockerd; }

t_info() {
	# dockerd runs `<default runtime> --version` and shows the "commit:" line
	# as "runc version" in `docker info` (runc prints "runc version X",
	# "commit: Y", "spec: Z").
	expect_ok dk info --format '{{.DefaultRuntime}}|{{.RuncCommit.ID}}|{{.RuncCommit.Expected}}'
	expect_match "$OUT" "^$RUNTIME\\|[^|]+\\|" "DefaultRuntime|RuncCommit.ID|"
	run_cmd grep -E 'failed to (retrieve|parse) .* version' "$DOCKERD_LOG"
	[ "$RC" = 1 ] || fail "dockerd could not read the runtime's --version"
}

t_image() {
	e2e_rootfs_tar "$E2E_TMP/rootfs.tar"
	expect_ok dk import -c 'CMD ["sh"]' "$E2E_TMP/rootfs.tar" "$IMG"
	expect_ok dk images --format '{{.Repository}}:{{.Tag}}'
	expect_contains "$IMG"
}

t_run_rm() {
	expect_ok dk run --rm "$IMG" echo hello from docker
	expect_out "hello from docker"
	expect_rc 3 dk run --rm "$IMG" sh -c 'exit 3'
	OUT=$(echo piped-in | dk run --rm -i "$IMG" cat) || fail "run -i failed"
	expect_out "piped-in"
	expect_ok dk run --name once "$IMG" true
	expect_ok dk ps -a --filter name=once --format '{{.Names}} {{.Status}}'
	expect_contains "once Exited (0)"
	expect_ok dk run --rm --name gone "$IMG" true
	expect_ok dk ps -a --filter name=gone --format '{{.Names}}'
	expect_out ""
}

t_run_tty() {
	expect_ok in_tty "$DOCKER" run --rm -it "$IMG" sh -c 'tty; echo in-a-tty; sleep 0.5'
	expect_contains "/dev/pts/0"
	expect_contains "in-a-tty"
}

t_web() {
	expect_ok dk run -d --name web -p "127.0.0.1:$PORT:80" "$IMG" \
		sh -c 'echo web-started; exec httpd -f -p 80 -h /www'
	wait_until 20 "page served on 127.0.0.1:$PORT" page_served
	run_cmd fetch
	expect_out "hello from the tong e2e image"
}

t_ps() {
	expect_ok dk ps --format '{{.Names}} {{.Status}} {{.Ports}}'
	expect_contains "web Up"
	expect_contains "127.0.0.1:$PORT->80/tcp"
	expect_not_contains "once"
	expect_ok dk ps -a --format '{{.Names}} {{.Status}}'
	expect_contains "web Up"
	expect_contains "once Exited (0)"
}

t_inspect() {
	local pid ip id
	expect_eq "$(insp '{{.State.Running}} {{.State.Status}}' web)" "true running" "State.Running State.Status"
	pid=$(insp '{{.State.Pid}}' web)
	expect_match "$pid" '^[1-9][0-9]*$' "State.Pid"
	[ -d "/proc/$pid" ] || fail "State.Pid $pid is not a live process"
	expect_eq "$(tr '\0' ' ' <"/proc/$pid/cmdline")" "httpd -f -p 80 -h /www " "cmdline of State.Pid"
	id=$(cid web)
	if e2e_systemd; then
		run_cmd cat "/proc/$pid/cgroup"
		expect_out "0::/system.slice/docker-$id.scope"
		e2e_expect_unit "$pid" "docker-$id.scope"
		e2e_expect_unit_props "docker-$id.scope" Slice=system.slice Delegate=yes
	else
		run_cmd grep ':memory:' "/proc/$pid/cgroup"
		expect_out "4:memory:/$E2E_CGROUP/$id"
	fi
	ip=$(insp '{{.NetworkSettings.IPAddress}}' web)
	expect_match "$ip" "^${BRIDGE_CIDR%.*/*}\.[0-9]+$" "NetworkSettings.IPAddress"
}

t_exec() {
	expect_ok dk exec -e FOO=bar -w /tmp -u 1000 web sh -c 'echo "$FOO $(pwd) $(id -u):$(id -g)"'
	expect_out "bar /tmp 1000:1000"
	expect_ok dk exec -u tester web id -un
	expect_out "tester"
	expect_rc 5 dk exec web sh -c 'exit 5'
	expect_ok dk exec web sh -c 'ps -o pid,args | grep -v ps'
	expect_contains "1 httpd -f -p 80 -h /www"
	expect_fail dk exec web /no/such/binary
}

t_exec_tty() {
	expect_ok in_tty "$DOCKER" exec -it web sh -c 'tty; stty size >/dev/null && echo has-size; echo $TERM'
	expect_contains "/dev/pts/"
	expect_contains "has-size"
	expect_contains "xterm"
	expect_rc 4 in_tty "$DOCKER" exec -it web sh -c 'exit 4'
}

t_logs() {
	expect_ok dk logs web
	expect_out "web-started"
	expect_ok dk run -d --name logger "$IMG" sh -c 'echo to-stdout; echo to-stderr >&2'
	wait_until 20 "logger exits" exited_with logger 0
	run_cmd dk logs logger
	expect_contains "to-stdout"
	expect_contains "to-stderr"
	expect_ok dk rm logger
}

t_top() {
	expect_ok dk top web
	expect_contains "httpd -f -p 80 -h /www"
	expect_ok dk exec -d web sleep 77
	wait_until 10 "top lists the exec'd sleep" sh -c "'$DOCKER' top web | grep -q 'sleep 77'"
}

stats_mem() {
	local mem
	mem=$(dk stats --no-stream --format '{{.MemUsage}}' web) || return 1
	mem=${mem%% *}
	[[ $mem =~ ^[0-9.]+([KMGT]i)?B$ ]] || return 1
	case $mem in 0B | 0.0*) return 1 ;; esac
}

t_stats() {
	# dockerd (with runc too) now and then answers its first sample with 0B.
	wait_until 15 "stats --no-stream shows a non-zero memory usage" stats_mem
	expect_ok dk stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' web
	expect_match "$OUT" '^web [0-9.]+([KMGT]i)?B / [0-9.]+([KMGT]i)?B [1-9][0-9]*$' "stats line"
}

t_pause() {
	expect_ok dk pause web
	expect_eq "$(insp '{{.State.Status}} {{.State.Paused}}' web)" "paused true" "State after pause"
	expect_eq "$(frozen web)" "FROZEN" "freezer state"
	expect_fail fetch 2
	expect_ok dk unpause web
	expect_eq "$(insp '{{.State.Status}} {{.State.Paused}}' web)" "running false" "State after unpause"
	expect_eq "$(frozen web)" "THAWED" "freezer state"
	wait_until 10 "page served after unpause" page_served
}

t_update() {
	# docker itself refuses --memory alone once a swap limit is in place.
	expect_ok dk update --memory 64m --memory-swap 128m --cpus 0.5 --pids-limit 50 --cpu-shares 256 web
	if e2e_systemd; then
		# cgroup v2: swap apart from memory (128m - 64m); shares 256 as weight 10
		# (1 + (256 - 2) * 9999 / 262142), as runc converts them.
		expect_eq "$(cg pids web pids.max) $(cg cpu web cpu.weight)" "50 10" "pids.max cpu.weight"
		expect_eq "$(cg memory web memory.max) $(cg memory web memory.swap.max)" "67108864 67108864" "memory.max memory.swap.max"
		expect_eq "$(cg cpu web cpu.max)" "50000 100000" "cpu.max"
		# The unit holds the same limits, so that systemd does not undo them.
		e2e_expect_unit_props "$(scope web)" TasksMax=50 CPUWeight=10 MemoryMax=67108864 \
			MemorySwapMax=67108864 CPUQuotaPerSecUSec=500ms
	else
		expect_eq "$(cg pids web pids.max) $(cg cpu web cpu.shares)" "50 256" "pids.max cpu.shares"
		expect_eq "$(cg memory web memory.limit_in_bytes)" 67108864 "memory.limit_in_bytes"
		expect_eq "$(cg memory web memory.memsw.limit_in_bytes)" 134217728 "memory.memsw.limit_in_bytes"
		expect_eq "$(cg cpu web cpu.cfs_quota_us) $(cg cpu web cpu.cfs_period_us)" "50000 100000" "cpu.cfs_quota_us cpu.cfs_period_us"
	fi
	expect_eq "$(insp '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' web)" "67108864 500000000" "HostConfig"
	wait_until 10 "page still served" page_served
}

t_stop_trap() {
	local t0
	expect_ok dk run -d --name trapper "$IMG" \
		sh -c 'trap "echo got-TERM; exit 42" TERM; echo trapper-started; while :; do sleep 0.1; done'
	wait_until 10 "trap installed" sh -c "'$DOCKER' logs trapper | grep -q trapper-started"
	t0=$SECONDS
	expect_ok dk stop trapper
	[ $((SECONDS - t0)) -lt 8 ] || fail "stop took $((SECONDS - t0))s: SIGTERM did not end it"
	expect_eq "$(insp '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}' trapper)" "exited 42 false" "State after stop"
	run_cmd dk logs trapper
	expect_contains "got-TERM"
}

t_kill() {
	expect_ok dk run -d --name victim "$IMG" sh -c 'trap "" TERM; while :; do sleep 0.1; done'
	expect_ok dk kill victim
	wait_until 10 "victim exited" exited_with victim 137
	expect_ok dk run -d --name hup "$IMG" sh -c 'trap "exit 11" HUP; while :; do sleep 0.1; done'
	sleep 0.5
	expect_ok dk kill -s HUP hup
	wait_until 10 "hup exited with 11 after SIGHUP" exited_with hup 11
	expect_ok dk rm victim hup
}

t_stop_timeout() {
	local t0 took
	expect_ok dk run -d --name stubborn "$IMG" sh -c 'trap "" TERM; echo ignoring; while :; do sleep 0.1; done'
	wait_until 10 "stubborn ignores TERM" sh -c "'$DOCKER' logs stubborn | grep -q ignoring"
	t0=$SECONDS
	expect_ok dk stop -t 2 stubborn
	took=$((SECONDS - t0))
	[ "$took" -ge 2 ] && [ "$took" -le 8 ] || fail "stop -t 2 took ${took}s (want 2..8)"
	echo "  ok: stop -t 2 took ${took}s"
	expect_eq "$(insp '{{.State.Status}} {{.State.ExitCode}}' stubborn)" "exited 137" "State after stop -t 2"
	expect_ok dk rm stubborn
}

t_start_stopped() {
	local pid
	expect_ok dk start trapper
	expect_eq "$(insp '{{.State.Running}}' trapper)" "true" "State.Running after start"
	wait_until 10 "trapper started twice" sh -c "[ \$('$DOCKER' logs trapper | grep -c trapper-started) = 2 ]"
	pid=$(insp '{{.State.Pid}}' trapper)
	[ -d "/proc/$pid" ] || fail "State.Pid $pid is not live"
	expect_ok dk exec trapper echo alive
	expect_out "alive"
}

t_restart() {
	local pid1 pid2 started1 started2
	pid1=$(insp '{{.State.Pid}}' web)
	started1=$(insp '{{.State.StartedAt}}' web)
	expect_ok dk restart -t 1 web
	pid2=$(insp '{{.State.Pid}}' web)
	started2=$(insp '{{.State.StartedAt}}' web)
	[ "$pid1" != "$pid2" ] || fail "Pid did not change across restart ($pid1)"
	[ "$started1" != "$started2" ] || fail "StartedAt did not change"
	expect_eq "$(insp '{{.State.Running}} {{.RestartCount}}' web)" "true 0" "State.Running RestartCount"
	wait_until 20 "page served after restart" page_served
	[ ! -d "/proc/$pid1" ] || fail "old pid $pid1 still alive"
}

t_rm() {
	local pid
	expect_ok dk stop -t 1 trapper
	expect_ok dk rm trapper
	expect_ok dk ps -a --filter name=trapper --format '{{.Names}}'
	expect_out ""
	expect_ok dk run -d --name doomed "$IMG" sleep 1000
	pid=$(insp '{{.State.Pid}}' doomed)
	expect_fail dk rm doomed
	expect_contains "Stop the container before attempting removal or force remove"
	expect_ok dk rm -f doomed
	expect_ok dk ps -a --filter name=doomed --format '{{.Names}}'
	expect_out ""
	wait_until 10 "pid $pid gone" sh -c "! [ -d /proc/$pid ]"
}

t_volumes() {
	local hd=$E2E_TMP/hostdir
	mkdir -p "$hd"
	echo from-host >"$hd/from-host"
	expect_ok dk run --rm -v "$hd:/data" "$IMG" sh -c 'cat /data/from-host; echo from-container >/data/from-container'
	expect_out "from-host"
	expect_eq "$(cat "$hd/from-container")" "from-container" "file written through the bind mount"
	expect_fail dk run --rm -v "$hd:/data:ro" "$IMG" sh -c 'touch /data/nope'
	expect_contains "Read-only file system"
	[ ! -e "$hd/nope" ] || fail "write went through a :ro mount"
	expect_ok dk run --rm -v "$hd:/data:ro" "$IMG" cat /data/from-host
	expect_out "from-host"
	expect_ok dk volume create e2evol
	expect_ok dk run --rm -v e2evol:/vol "$IMG" sh -c 'echo persisted >/vol/f'
	expect_ok dk run --rm -v e2evol:/vol:ro "$IMG" cat /vol/f
	expect_out "persisted"
	expect_ok dk volume rm e2evol
}

t_read_only() {
	expect_fail dk run --rm --read-only "$IMG" touch /x
	expect_contains "Read-only file system"
	expect_ok dk run --rm --read-only --tmpfs /scratch "$IMG" \
		sh -c 'echo ok >/scratch/f && cat /scratch/f && grep " /scratch " /proc/mounts'
	expect_contains "ok"
	expect_contains "tmpfs /scratch tmpfs rw"
	expect_ok dk run --rm --tmpfs /scratch:size=1m "$IMG" df -k /scratch
	expect_contains "1024"
}

t_process_opts() {
	expect_ok dk run --rm -e A=1 -e B="two words" --entrypoint /bin/sh --user 1000:2000 \
		--hostname e2ehost --workdir /tmp "$IMG" \
		-c 'echo "$A|$B|$(id -u):$(id -g)|$(hostname)|$(pwd)"'
	expect_out "1|two words|1000:2000|e2ehost|/tmp"
	expect_ok dk run --rm --user tester "$IMG" sh -c 'id -un; echo $HOME'
	expect_out $'tester\n/home/tester'
	expect_ok dk run --rm --workdir /new/dir "$IMG" pwd
	expect_out "/new/dir"
}

t_workdir_as_user() {
	# runc enters process.cwd before dropping to the user (and again after,
	# should that fail): a root-only directory works as the workdir.
	expect_ok dk run --rm --user 1000 --workdir /root "$IMG" pwd
	expect_out "/root"
}

t_group_add() {
	# docker passes additionalGids [1000, 2000, 2000] here (tester is in
	# group extra=2000 and --group-add adds it again); runc sets each once.
	expect_ok dk run --rm --user 1000 --group-add 2000 "$IMG" id -G
	expect_out "1000 2000"
}

t_more_options() {
	expect_ok dk run --rm --init "$IMG" ps -o pid,args
	expect_contains "1 /sbin/docker-init -- ps -o pid,args"
	expect_ok dk run --rm --ulimit nofile=512:512 "$IMG" sh -c 'ulimit -n'
	expect_out "512"
	expect_ok dk run --rm --shm-size 8m "$IMG" sh -c 'df -k /dev/shm | tail -n 1'
	expect_contains "8192"
	expect_ok dk run --rm --sysctl net.ipv4.ip_forward=1 "$IMG" cat /proc/sys/net/ipv4/ip_forward
	expect_out "1"
	expect_ok dk run --rm --device /dev/null:/dev/mynull "$IMG" sh -c 'echo x >/dev/mynull && ls -l /dev/mynull'
	expect_contains "1,   3"
	expect_ok dk run --rm --cpuset-cpus 0 --cpu-shares 512 "$IMG" grep Cpus_allowed_list /proc/self/status
	expect_contains $'Cpus_allowed_list:\t0'
	expect_ok dk run --rm --security-opt no-new-privileges "$IMG" grep NoNewPrivs /proc/self/status
	expect_contains $'NoNewPrivs:\t1'
	expect_ok dk run --rm -t "$IMG" tty
	expect_contains "/dev/pts/0"
}

t_join_namespaces() {
	# Joining another container's namespaces by path.
	expect_ok dk run -d --name base --ipc shareable "$IMG" sh -c 'echo shared >/dev/shm/marker; exec sleep 1000'
	wait_until 10 "marker written" dk exec base test -e /dev/shm/marker
	expect_ok dk run --rm --network container:base --pid container:base --ipc container:base "$IMG" \
		sh -c 'cat /dev/shm/marker; ps -o args | grep -x "sleep 1000"; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\n" " "'
	expect_out $'shared\nsleep 1000\neth0 lo '
	expect_ok dk rm -f base
}

t_health_restart_policy() {
	expect_ok dk run -d --name healthy --health-cmd 'test -e /etc/passwd' --health-interval 1s "$IMG" sleep 1000
	wait_until 30 "health status healthy" sh -c "[ \"\$('$DOCKER' inspect -f '{{.State.Health.Status}}' healthy)\" = healthy ]"
	expect_ok dk run -d --name flaky --restart on-failure:2 "$IMG" sh -c 'exit 1'
	wait_until 30 "restarted twice then gave up" sh -c "[ \"\$('$DOCKER' inspect -f '{{.RestartCount}} {{.State.Status}}' flaky)\" = '2 exited' ]"
	expect_ok dk rm -f healthy flaky
}

t_stop_signal() {
	expect_ok dk run -d --name usr1 --stop-signal USR1 "$IMG" sh -c 'trap "exit 12" USR1; echo ready; while :; do sleep 0.1; done'
	wait_until 10 "trap installed" sh -c "'$DOCKER' logs usr1 | grep -q ready"
	expect_ok dk stop usr1
	expect_eq "$(insp '{{.State.ExitCode}}' usr1)" 12 "exit code after stop with SIGUSR1"
	expect_ok dk rm usr1
}

t_commit() {
	# docker commit pauses the container while it copies its filesystem.
	expect_ok dk exec web sh -c 'echo committed >/committed.txt'
	expect_ok dk commit web tong-e2e/committed:latest
	expect_eq "$(insp '{{.State.Status}}' web)" running "web after commit"
	expect_ok dk run --rm --entrypoint cat tong-e2e/committed:latest /committed.txt
	expect_out "committed"
	wait_until 10 "page served after commit" page_served
}

t_oom() {
	expect_rc 137 dk run --name oomer --memory 32m "$IMG" \
		"${E2E_OOM_CMD[@]}"
	expect_eq "$(insp '{{.State.ExitCode}} {{.State.OOMKilled}}' oomer)" "137 true" "ExitCode OOMKilled"
	expect_eq "$(insp '{{.HostConfig.Memory}}' oomer)" 33554432 "HostConfig.Memory"
}

t_pids_limit() {
	expect_ok dk run -d --name pids --pids-limit 8 "$IMG" \
		sh -c 'sh -c "for i in \$(seq 1 20); do sleep 60 & done" 2>&1; echo spawned; exec sleep 60'
	wait_until 20 "loop done" sh -c "'$DOCKER' logs pids 2>&1 | grep -q spawned"
	expect_eq "$(cg pids pids pids.max)" 8 "pids.max"
	[ "$(cg pids pids pids.current)" -le 8 ] || fail "pids.current above 8"
	if e2e_systemd; then e2e_expect_unit_props "$(scope pids)" TasksMax=8; fi
	run_cmd dk logs pids
	expect_contains "can't fork"
	expect_ok dk rm -f pids
}

t_caps() {
	expect_fail dk run --rm --cap-drop ALL "$IMG" sh -c 'grep CapEff /proc/self/status; chown 1000 /tmp'
	expect_contains $'CapEff:\t0000000000000000'
	expect_contains "Operation not permitted"
	expect_ok dk run --rm --cap-drop ALL --cap-add CHOWN "$IMG" sh -c 'grep CapEff /proc/self/status; chown 1000 /tmp'
	expect_contains $'CapEff:\t0000000000000001'
	expect_ok dk run --rm "$IMG" grep CapBnd /proc/self/status
	expect_contains $'CapBnd:\t00000000a80425fb'
	expect_ok dk run --rm --cap-add SYS_ADMIN "$IMG" grep CapEff /proc/self/status
	expect_contains $'CapEff:\t00000000a82425fb'
}

t_seccomp() {
	expect_fail dk run --rm "$IMG" sh -c 'grep Seccomp: /proc/self/status; unshare -U true'
	expect_contains $'Seccomp:\t2'
	expect_contains "Operation not permitted"
	expect_ok dk run --rm --security-opt seccomp=unconfined "$IMG" sh -c 'grep Seccomp: /proc/self/status; unshare -U true'
	expect_contains $'Seccomp:\t0'
}

t_network_none() {
	expect_ok dk run --rm --network none "$IMG" sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'
	expect_out "lo"
	expect_ok dk run --rm "$IMG" sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort'
	expect_out $'eth0\nlo'
}

t_cp() {
	echo copied-in >"$E2E_TMP/cp-in.txt"
	expect_ok dk cp "$E2E_TMP/cp-in.txt" web:/tmp/cp-in.txt
	expect_ok dk exec web cat /tmp/cp-in.txt
	expect_out "copied-in"
	expect_ok dk exec web sh -c 'echo copied-out >/tmp/cp-out.txt'
	expect_ok dk cp web:/tmp/cp-out.txt "$E2E_TMP/cp-out.txt"
	expect_eq "$(cat "$E2E_TMP/cp-out.txt")" "copied-out" "file copied out"
}

t_wait() {
	expect_ok dk run -d --name waiter "$IMG" sh -c 'sleep 1; exit 7'
	expect_ok dk wait waiter
	expect_out "7"
	expect_ok dk rm waiter
}

t_events() {
	# dockerd keeps only its last 256 events: read the stream recorded since
	# the daemon started (see start_dockerd).
	local ev=$E2E_TMP/events.txt
	run_cmd grep '^oomer ' "$ev"
	expect_contains "oomer start"
	expect_contains "oomer oom"
	expect_contains "oomer die"
	run_cmd sh -c "grep '^web ' '$ev' | grep -v exec_"
	expect_contains "web start"
	expect_contains "web pause"
	expect_contains "web unpause"
	expect_contains "web update"
	expect_contains "web kill"
	expect_contains "web die"
	expect_contains "web restart"
}

t_rm_all() {
	local ids
	ids=$(dk ps -aq)
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086
		expect_ok dk rm -f $ids
	fi
	expect_ok dk ps -aq
	expect_out ""
}

t_stop_daemon() {
	local pid
	pid=$(cat "$DOCKERD_PIDFILE")
	stop_dockerd
	! kill -0 "$pid" 2>/dev/null || fail "dockerd ($pid) still running"
	echo "  ok: dockerd stopped"
}

PORT=$(e2e_free_port)
step daemon t_daemon
step info t_info
step image t_image
step run-rm t_run_rm
step run-it t_run_tty
step run-d-httpd t_web
step ps t_ps
step inspect t_inspect
step exec t_exec
step exec-it t_exec_tty
step logs t_logs
step top t_top
step stats t_stats
step pause-unpause t_pause
step update t_update
step stop-sigterm-trap t_stop_trap
step kill t_kill
step stop-timeout t_stop_timeout
step start-stopped t_start_stopped
step restart t_restart
step rm t_rm
step volumes t_volumes
step read-only-tmpfs t_read_only
step process-options t_process_opts
step workdir-as-user t_workdir_as_user
step group-add t_group_add
step more-options t_more_options
step join-namespaces t_join_namespaces
step health-restart-policy t_health_restart_policy
step stop-signal t_stop_signal
step commit t_commit
step oom t_oom
step pids-limit t_pids_limit
step caps t_caps
step seccomp t_seccomp
step network-none t_network_none
step cp t_cp
step wait t_wait
step events t_events
step rm-all t_rm_all
step stop-daemon t_stop_daemon
e2e_finish
