# shellcheck shell=bash
# Shared by hack/e2e/{docker,podman,containerd}.sh; sourced, never run.
#
# What it gives a script:
#   e2e_init ENGINE         temp dir ($E2E_TMP), cgroup parent name ($E2E_CGROUP),
#                           runtime under test ($RUNTIME_BIN), the EXIT trap; with
#                           the systemd driver, the units already there that match
#                           E2E_UNITS (set by the script before: globs of its
#                           containers' units), so that only new ones count as its own
#   step NAME FUNC [ARGS]   runs FUNC in a subshell with `set -e`; a step passes
#                           when FUNC returns 0; output is shown on failure
#   criu_step NAME FUNC     a step that checkpoints or restores: as step, but skipped
#                           (SKIP line with the reason, counted as skipped) when CRIU
#                           cannot work here (no criu, or `criu check` fails)
#   skip_step NAME REASON   NAME is not run, for REASON (counted as skipped)
#   expect_* / fail         assertions used inside steps (timed: expect_ok with its time)
#   e2e_finish              leftover checks and the closing count line
#
# Environment:
#   RUNTIME=tong|runc       the runtime the engine drives (default tong)
#   TONG=PATH               tong binary (default: target/<target>/release/tong (hack/env.sh), built
#                           with `cargo build --release` when missing)
#   E2E_KNOWN_FAILURES      empty (default): the first failing step stops the
#                           script, which exits 1. "1" or "all": every failing
#                           step is reported as a known failure and the script
#                           goes on. Otherwise a space/comma separated list of
#                           step names or globs ("docker/update docker/oom*")
#                           that may fail; any other failure still stops it.
#   E2E_STEPS               empty (default): every step. Otherwise a space/comma
#                           separated list of step names or globs, as for
#                           E2E_KNOWN_FAILURES, where "cgroup" stands for the
#                           script's steps about cgroups and units (its
#                           E2E_CGROUP_STEPS); the other steps are skipped (SKIP
#                           lines, counted as skipped). The steps that set the
#                           engine up and take it down (its E2E_BASE_STEPS) and the
#                           leftovers check always run.
#   E2E_VERBOSE=1           print every step's output, not only a failing one's
#   E2E_CMD_TIMEOUT         seconds any single engine command may take (120)
#   E2E_CGROUP_DRIVER       cgroupfs (default): the engine's cgroupfs driver under the
#                           cgroup parent /tong-e2e-<engine>-<pid>. systemd: the
#                           engine's systemd driver (needs systemd as PID 1 and a pure
#                           cgroup v2 host): each container is a transient scope unit;
#                           steps find its cgroup from /proc/PID/cgroup and check the
#                           unit's properties too.

set -uo pipefail

E2E_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_PASSED=0
E2E_FAILED=0
E2E_KNOWN=0
E2E_KNOWN_LIST=()
E2E_NOT_RUN=()
# Steps skipped for a reason of the host's ("name: reason"), by skip_step.
E2E_SKIPPED=()
# Set by each script: the steps that always run, and those E2E_STEPS=cgroup selects.
E2E_BASE_STEPS=""
E2E_CGROUP_STEPS=""
E2E_FAILED_LIST=()
E2E_CMD_TIMEOUT=${E2E_CMD_TIMEOUT:-120}
E2E_CLEANUP_FNS=()
E2E_CGROUP_DRIVER=${E2E_CGROUP_DRIVER:-cgroupfs}
# Globs of the units the engine makes for its containers (systemd driver only).
E2E_UNITS=()
E2E_UNITS_BEFORE=()
E2E_UNIT_CGROUPS_BEFORE=()

e2e_log() { printf '%s\n' "$*" >&2; }
e2e_die() {
	e2e_log "e2e: $*"
	exit 1
}

# e2e_need CMD PACKAGE...: installs PACKAGEs with apt-get when CMD is missing.
e2e_need() {
	local cmd=$1
	shift
	if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
		e2e_log "e2e: installing $* (for $cmd)"
		export DEBIAN_FRONTEND=noninteractive
		if [ -z "${E2E_APT_UPDATED:-}" ]; then
			apt-get update -qq >/dev/null
			E2E_APT_UPDATED=1
		fi
		apt-get install -y -qq "$@" >/dev/null || e2e_die "apt-get install $* failed"
	fi
}

# e2e_runtime_bin: sets RUNTIME_BIN to the absolute path of the runtime under test.
e2e_runtime_bin() {
	case $RUNTIME in
	tong)
		if [ -n "${TONG:-}" ]; then
			RUNTIME_BIN=$TONG
		else
			# shellcheck source=hack/env.sh
			. "$E2E_REPO/hack/env.sh"
			RUNTIME_BIN=$TONG_BIN
			if [ ! -x "$RUNTIME_BIN" ]; then
				e2e_log "e2e: building tong (cargo build --release)"
				e2e_need pkg-config pkg-config
				[ -e /usr/include/seccomp.h ] || e2e_need /usr/include/seccomp.h libseccomp-dev
				(cd "$E2E_REPO" && cargo build --release --quiet) || e2e_die "cargo build failed"
			fi
		fi
		;;
	runc)
		e2e_need runc runc
		RUNTIME_BIN=$(command -v runc)
		;;
	*) e2e_die "RUNTIME must be tong or runc, not '$RUNTIME'" ;;
	esac
	case $RUNTIME_BIN in
	/*) ;;
	*) RUNTIME_BIN=$(cd "$(dirname "$RUNTIME_BIN")" && pwd)/$(basename "$RUNTIME_BIN") ;;
	esac
	[ -x "$RUNTIME_BIN" ] || e2e_die "runtime binary $RUNTIME_BIN is not executable"
}

# e2e_init ENGINE: the temp dir, the cgroup parent, the runtime and the EXIT trap.
e2e_init() {
	E2E_ENGINE=$1
	[ "$(id -u)" = 0 ] || e2e_die "run as root (engines start real containers)"
	RUNTIME=${RUNTIME:-tong}
	case $E2E_CGROUP_DRIVER in
	cgroupfs) ;;
	systemd)
		[ -d /run/systemd/system ] ||
			e2e_die "E2E_CGROUP_DRIVER=systemd: systemd is not running here (hack/vmtest/engines.sh runs it in a guest that boots systemd)"
		[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] ||
			e2e_die "E2E_CGROUP_DRIVER=systemd needs a pure cgroup v2 host (tong's systemd driver is cgroup v2 only)"
		[ ${#E2E_UNITS[@]} -gt 0 ] || e2e_die "the script set no E2E_UNITS"
		;;
	*) e2e_die "E2E_CGROUP_DRIVER must be cgroupfs or systemd, not '$E2E_CGROUP_DRIVER'" ;;
	esac
	e2e_runtime_bin
	E2E_TMP=$(mktemp -d "/tmp/tong-e2e-$E2E_ENGINE.XXXXXX")
	chmod 755 "$E2E_TMP"
	# One cgroup parent per run, at the root of every hierarchy (never under
	# the caller's own cgroup); removed by the cleanup.
	E2E_CGROUP=tong-e2e-$E2E_ENGINE-$$

	# Engines' helpers may write relative paths (conmon writes "oom" into its
	# cwd): work from a directory of this run, never the caller's.
	mkdir "$E2E_TMP/cwd"
	cd "$E2E_TMP/cwd" || e2e_die "cannot enter $E2E_TMP/cwd"
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
	# /sys/fs/cgroup/<controller> of a hierarchy not mounted here: an engine
	# may mkdir it in the tmpfs (see e2e_cgroup_sanity); remove it if so.
	local c
	for c in $(awk 'NR > 1 { print $1 }' /proc/cgroups); do
		e2e_track_dirs "/sys/fs/cgroup/$c"
	done
	if e2e_systemd; then
		mapfile -t E2E_UNITS_BEFORE < <(e2e_units_all)
		mapfile -t E2E_UNIT_CGROUPS_BEFORE < <(e2e_unit_cgroups_all)
		e2e_log "e2e: $E2E_ENGINE with RUNTIME=$RUNTIME ($RUNTIME_BIN), temp dir $E2E_TMP, systemd cgroup driver (units ${E2E_UNITS[*]}, ${#E2E_UNITS_BEFORE[@]} such there before)"
	else
		e2e_log "e2e: $E2E_ENGINE with RUNTIME=$RUNTIME ($RUNTIME_BIN), temp dir $E2E_TMP, cgroup parent /$E2E_CGROUP"
	fi
	e2e_cgroup_sanity >&2
}

# A cgroup v1 hierarchy that some other mount namespace created (a benchmark,
# a test) shows in /proc/PID/cgroup but is mounted nowhere here; containerd's
# cgroup library then cannot load any container's cgroups, so OOM events,
# stats and metrics go missing for runc and tong alike. Say so up front.
e2e_cgroup_sanity() {
	local line ctrls c
	while IFS= read -r line; do
		ctrls=${line#*:}
		ctrls=${ctrls%%:*}
		[ -n "$ctrls" ] || continue # the v2 line
		c=${ctrls#name=}
		c=${c%%,*}
		if ! awk -v c="$c" '$9 == "cgroup" { n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c || o[i] == "name=" c) f = 1 } END { exit !f }' /proc/self/mountinfo; then
			echo "e2e: WARNING: cgroup v1 hierarchy '$ctrls' exists (made in another mount namespace?)" \
				"but is not mounted here: containerd cannot load container cgroups, so OOM" \
				"events, stats and metrics will be missing whatever the runtime"
		fi
	done </proc/self/cgroup
}

# ---------------------------------------------------------------- systemd driver

e2e_systemd() { [ "$E2E_CGROUP_DRIVER" = systemd ]; }

# Units matching E2E_UNITS (whatever their state, failed ones included), one a line.
e2e_units_all() {
	[ ${#E2E_UNITS[@]} -gt 0 ] || return 0
	{ systemctl list-units --all --plain --no-legend --no-pager "${E2E_UNITS[@]}" 2>/dev/null || true; } |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\.(scope|slice|service)$/) { print $i; break } }' | sort -u
}
# This run's units: those not there when it started and, where the script defines
# e2e_container_ids (its containers' ids, as other containers' units may match its
# globs: a host's own docker), named after one of its containers.
e2e_units() {
	e2e_units_all | { grep -vxF -f <(printf '%s\n' "${E2E_UNITS_BEFORE[@]}") || true; } | e2e_own
}
e2e_own() {
	if declare -F e2e_container_ids >/dev/null; then
		grep -F -f <(e2e_container_ids | grep . || echo /none/) || true
	else
		cat
	fi
}
# cgroup v2 directories named like E2E_UNITS, deepest first.
e2e_unit_cgroups_all() {
	local g args=()
	for g in "${E2E_UNITS[@]}"; do args+=(-o -name "$g"); done
	[ ${#args[@]} -gt 0 ] || return 0
	find /sys/fs/cgroup -depth -mindepth 1 -type d \( "${args[@]:1}" \) 2>/dev/null || true
}
e2e_unit_cgroups() {
	e2e_unit_cgroups_all | { grep -vxF -f <(printf '%s\n' "${E2E_UNIT_CGROUPS_BEFORE[@]}") || true; } | e2e_own
}

# The command of a container that a 32 MiB memory limit gets OOM-killed. With the systemd
# driver the hog is a child of the container's init, which outlives it by 5 s: systemd
# removes a scope's cgroup as soon as nothing is left in it, and containerd's shim and
# conmon read memory.events only once the kernel's inotify wakes them, too late under TCG
# whatever the runtime (runc's containers lose their OOM event there as well). The exit
# status stays 137, the hog's.
# shellcheck disable=SC2016,SC2034 # the container's shell expands them; the scripts use it
if [ "$E2E_CGROUP_DRIVER" = systemd ]; then
	E2E_OOM_CMD=(sh -c 'sh -c '\''x=0123456789abcdef; while :; do x=$x$x; done'\''; st=$?; sleep 5; exit $st')
else
	E2E_OOM_CMD=(sh -c 'x=0123456789abcdef; while :; do x=$x$x; done')
fi

# e2e_cgroup_of PID: PID's cgroup v2 path, as /proc/PID/cgroup gives it ("/system.slice/x.scope").
e2e_cgroup_of() {
	local cg
	cg=$(sed -n 's/^0:://p' "/proc/$1/cgroup") || return 1
	[ -n "$cg" ] || return 1
	echo "$cg"
}
# e2e_cgfile PID FILE: FILE of PID's cgroup (v2).
e2e_cgfile() {
	local cg
	cg=$(e2e_cgroup_of "$1") || fail "no cgroup v2 line in /proc/$1/cgroup"
	cat "/sys/fs/cgroup$cg/$2"
}
# e2e_frozen PID: FROZEN or THAWED, as v1's freezer.state says it, from v2's cgroup.events.
e2e_frozen() {
	case $(e2e_cgfile "$1" cgroup.events | awk '$1 == "frozen" { print $2 }') in
	1) echo FROZEN ;;
	0) echo THAWED ;;
	*) echo "no frozen line in cgroup.events" ;;
	esac
}
# e2e_unit_prop UNIT PROPERTY: the unit's property value (systemctl show -P).
e2e_unit_prop() { systemctl show -P "$2" "$1"; }
# e2e_expect_unit PID UNIT: (in a step) PID's cgroup is UNIT's, an active scope whose
# ControlGroup is that cgroup.
e2e_expect_unit() {
	local pid=$1 unit=$2 cg
	cg=$(e2e_cgroup_of "$pid") || fail "no cgroup v2 line in /proc/$pid/cgroup"
	expect_match "$cg" "/$unit\$" "cgroup of pid $pid"
	expect_eq "$(e2e_unit_prop "$unit" ActiveState) $(e2e_unit_prop "$unit" SubState)" "active running" "$unit ActiveState SubState"
	expect_eq "$(e2e_unit_prop "$unit" ControlGroup)" "$cg" "$unit ControlGroup"
}
# e2e_expect_unit_props UNIT PROP=VALUE...: (in a step) the unit's properties.
e2e_expect_unit_props() {
	local unit=$1 kv
	shift
	for kv in "$@"; do
		expect_eq "$(e2e_unit_prop "$unit" "${kv%%=*}")" "${kv#*=}" "$unit ${kv%%=*}"
	done
}

# ---------------------------------------------------------------- assertions
# Inside a step: every helper fails the step (exit 1 of its subshell).

fail() {
	printf 'FAIL: %s\n' "$*"
	exit 1
}

# run_cmd CMD...: runs CMD (stdout+stderr into $OUT, carriage returns dropped;
# exit code into $RC) without failing.
run_cmd() {
	printf '+ %s\n' "$*"
	OUT=$("$@" 2>&1) && RC=0 || RC=$?
	OUT=${OUT//$'\r'/}
	if [ -n "$OUT" ]; then printf '%s\n' "$OUT" | sed 's/^/  | /'; fi
	[ "$RC" = 0 ] || printf '  (exit %s)\n' "$RC"
}

# expect_rc N CMD...: CMD exits with N.
expect_rc() {
	local want=$1
	shift
	run_cmd "$@"
	[ "$RC" = "$want" ] || fail "expected exit $want, got $RC from: $*"
}
expect_ok() { expect_rc 0 "$@"; }
# expect_fail CMD...: CMD exits non-zero.
expect_fail() {
	run_cmd "$@"
	[ "$RC" != 0 ] || fail "expected a non-zero exit from: $*"
}
# expect_out TEXT: the last command's output is exactly TEXT.
expect_out() {
	[ "$OUT" = "$1" ] || fail "expected output '$1', got '$OUT'"
}
# expect_contains TEXT: the last command's output contains TEXT.
expect_contains() {
	case $OUT in
	*"$1"*) ;;
	*) fail "expected output to contain '$1'" ;;
	esac
}
expect_not_contains() {
	case $OUT in
	*"$1"*) fail "expected output not to contain '$1'" ;;
	*) ;;
	esac
}
# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
	printf '  ok: %s = %s\n' "$3" "$2"
}
# expect_match ACTUAL REGEX WHAT
expect_match() {
	[[ $1 =~ $2 ]] || fail "$3: '$1' does not match /$2/"
	printf '  ok: %s = %s\n' "$3" "$1"
}
# timed CMD...: expect_ok CMD, then how long it took.
timed() {
	local t0=$SECONDS
	expect_ok "$@"
	echo "  took $((SECONDS - t0))s: $*"
}
# wait_until SECONDS WHAT CMD...: retries CMD (quietly) every 0.2 s.
wait_until() {
	local limit=$1 what=$2 end
	shift 2
	end=$((SECONDS + limit))
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || fail "timed out after ${limit}s waiting for $what"
		sleep 0.2
	done
	printf '  ok: %s\n' "$what"
}
# in_tty CMD...: runs CMD with a pseudo-terminal as its stdin/stdout (script(1)).
in_tty() {
	local q
	q=$(printf '%q ' "$@")
	timeout "$E2E_CMD_TIMEOUT" script -qec "$q" /dev/null </dev/null
}

# ---------------------------------------------------------------- steps

e2e_is_known() {
	local name=$1 pat
	case ${E2E_KNOWN_FAILURES:-} in
	"") return 1 ;;
	1 | all) return 0 ;;
	esac
	for pat in ${E2E_KNOWN_FAILURES//,/ }; do
		# shellcheck disable=SC2053
		[[ $name == $pat || ${name#*/} == $pat ]] && return 0
	done
	return 1
}

# e2e_selected NAME: whether E2E_STEPS selects step NAME (engine/step).
e2e_selected() {
	local name=$1 w pat
	[ -n "${E2E_STEPS:-}" ] || return 0
	for w in leftovers $E2E_BASE_STEPS ${E2E_STEPS//,/ }; do
		[ "$w" = cgroup ] && w=$E2E_CGROUP_STEPS
		for pat in $w; do
			# shellcheck disable=SC2053
			[[ $name == $pat || ${name#*/} == $pat ]] && return 0
		done
	done
	return 1
}

# step NAME FUNC [ARGS...]
step() {
	local name=$E2E_ENGINE/$1 t0=$SECONDS rc out
	shift
	if ! e2e_selected "$name"; then
		E2E_NOT_RUN+=("${name#*/}")
		e2e_log "SKIP $name (not in E2E_STEPS)"
		return 0
	fi
	out=$E2E_TMP/step.out
	(
		set -euo pipefail
		"$@"
	) >"$out" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		E2E_PASSED=$((E2E_PASSED + 1))
		e2e_log "PASS $name ($((SECONDS - t0))s)"
		[ -z "${E2E_VERBOSE:-}" ] || sed 's/^/    /' "$out" >&2
		if [ -n "${E2E_KNOWN_FAILURES:-}" ] && [ "$E2E_KNOWN_FAILURES" != 1 ] &&
			[ "$E2E_KNOWN_FAILURES" != all ] && e2e_is_known "$name"; then
			e2e_log "     ($name is listed in E2E_KNOWN_FAILURES but passed: drop it from the list)"
		fi
		return 0
	fi
	e2e_log "FAIL $name ($((SECONDS - t0))s, exit $rc)"
	sed 's/^/    /' "$out" >&2
	e2e_cgroup_sanity | sed 's/^/    diag: /' >&2
	if declare -F e2e_diagnose >/dev/null; then
		e2e_diagnose 2>&1 | sed 's/^/    diag: /' >&2
	fi
	if e2e_is_known "$name"; then
		E2E_KNOWN=$((E2E_KNOWN + 1))
		E2E_KNOWN_LIST+=("$name")
		e2e_log "KNOWN FAILURE $name (tolerated by E2E_KNOWN_FAILURES='${E2E_KNOWN_FAILURES}')"
		return 0
	fi
	E2E_FAILED=$((E2E_FAILED + 1))
	E2E_FAILED_LIST+=("$name")
	e2e_log "e2e: stopping at the first unexpected failure ($name);" \
		"set E2E_KNOWN_FAILURES=1 to run past failures"
	e2e_summary
	exit 1
}

# skip_step NAME REASON: step NAME is not run here, for REASON (a SKIP line with it;
# counted as skipped, never as passed).
skip_step() {
	local name=$E2E_ENGINE/$1
	E2E_SKIPPED+=("${name#*/} ($2)")
	e2e_log "SKIP $name ($2)"
}

# e2e_criu_check: sets E2E_CRIU_SKIP to why CRIU cannot checkpoint here (empty when it
# can): no criu, or `criu check` fails (Debian's criu 3.17 on kernels newer than it knows:
# "vdso: Unexpected rt vDSO area bounds" on 6.18). Once per run.
E2E_CRIU_CHECKED=
E2E_CRIU_SKIP=
e2e_criu_check() {
	local log err
	[ -z "$E2E_CRIU_CHECKED" ] || return 0
	E2E_CRIU_CHECKED=1
	if ! command -v criu >/dev/null 2>&1; then
		E2E_CRIU_SKIP="no criu here (apt-get install criu)"
		return 0
	fi
	log=$E2E_TMP/criu-check.log
	if ! timeout "$E2E_CMD_TIMEOUT" criu check -v2 -o "$log" >/dev/null 2>&1; then
		err=$(grep -m 1 '^Error' "$log" 2>/dev/null)
		E2E_CRIU_SKIP="criu check fails here ($(criu --version 2>/dev/null | awk '/^Version:/ { print "criu " $2 }'), kernel $(uname -r)): ${err:-see criu check}"
	fi
	rm -f "$log"
}

# criu_step NAME FUNC [ARGS...]: step, for a step that needs CRIU (checkpoint, restore):
# skipped with the reason when CRIU cannot work here.
criu_step() {
	if e2e_selected "$E2E_ENGINE/$1"; then
		e2e_criu_check
		if [ -n "$E2E_CRIU_SKIP" ]; then
			skip_step "$1" "$E2E_CRIU_SKIP"
			return 0
		fi
	fi
	step "$@"
}

e2e_summary() {
	local n
	if [ "$E2E_KNOWN" -gt 0 ]; then
		e2e_log "e2e: known failures (tolerated, NOT passing) with RUNTIME=$RUNTIME:"
		for n in "${E2E_KNOWN_LIST[@]}"; do e2e_log "  - $n"; done
	fi
	if [ "$E2E_FAILED" -gt 0 ]; then
		e2e_log "e2e: failed: ${E2E_FAILED_LIST[*]}"
	fi
	if [ ${#E2E_NOT_RUN[@]} -gt 0 ]; then
		e2e_log "e2e: not run (E2E_STEPS='$E2E_STEPS'): ${E2E_NOT_RUN[*]}"
	fi
	if [ ${#E2E_SKIPPED[@]} -gt 0 ]; then
		e2e_log "e2e: skipped here:"
		for n in "${E2E_SKIPPED[@]}"; do e2e_log "  - $n"; done
	fi
	# The plain closing line; known failures and steps not run count as skipped.
	echo "$E2E_ENGINE-e2e: $E2E_PASSED passed, $E2E_FAILED failed, $((E2E_KNOWN + ${#E2E_NOT_RUN[@]} + ${#E2E_SKIPPED[@]})) skipped"
}

# ---------------------------------------------------------------- leftovers

# The cgroup directories of this run, deepest first (with the systemd driver: those of
# its units too).
e2e_cgroup_dirs() {
	local h
	if e2e_systemd; then e2e_unit_cgroups; fi
	for h in /sys/fs/cgroup/*/"$E2E_CGROUP" /sys/fs/cgroup/"$E2E_CGROUP"; do
		[ -d "$h" ] || continue
		case $(stat -f -c %T "$h") in
		cgroupfs | cgroup2fs) find "$h" -depth -type d ;;
		esac
	done
	return 0
}

# Directories named after this run's cgroup parent that are NOT cgroups: an
# engine's cgroup code mkdir-ing into /sys/fs/cgroup/<controller> (a tmpfs)
# for a controller whose hierarchy exists but is not mounted here.
e2e_cgroup_junk() {
	local h
	for h in /sys/fs/cgroup/*/"$E2E_CGROUP"; do
		[ -d "$h" ] || continue
		[ "$(stat -f -c %T "$h")" = tmpfs ] && echo "$h"
	done
	return 0
}

# Pids of processes in this run's cgroups.
e2e_cgroup_pids() {
	local d
	e2e_cgroup_dirs | while read -r d; do
		cat "$d/cgroup.procs" 2>/dev/null
	done | sort -un
}

# Pids of processes whose command line mentions this run's temp dir
# (daemons, shims, conmon), this shell and its ancestors excepted.
e2e_tmp_pids() {
	local p cmd
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		[ "$p" = "$BASHPID" ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		case $cmd in *"$E2E_TMP"*) echo "$p" ;; esac
	done
}

# Pids of processes of another e2e run (their temp dir on the command line).
e2e_other_runs() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		case $cmd in
		*"$E2E_TMP"*) ;;
		*/tmp/tong-e2e-*) printf '%s ' "${p#/proc/}" ;;
		esac
	done
}

# Mount points at or under this run's temp dir, deepest first.
e2e_tmp_mounts() {
	awk -v t="$E2E_TMP" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r
}

# Step body: nothing of this run is left once the engine is stopped.
e2e_check_leftovers() {
	local pids mounts cgs left d
	if declare -F e2e_before_leftovers >/dev/null; then
		e2e_before_leftovers
	fi
	pids=$( (e2e_cgroup_pids; e2e_tmp_pids) | sort -un | tr '\n' ' ')
	[ -z "${pids// /}" ] || {
		ps -o pid,ppid,args -p "${pids// /,}" 2>/dev/null || true
		fail "processes left: $pids"
	}
	echo "  ok: no container, shim or daemon process left"
	mounts=$(e2e_tmp_mounts)
	[ -z "$mounts" ] || fail "mounts left: $mounts"
	echo "  ok: no mount left under $E2E_TMP"
	# The runtime removes each container's cgroup; only the parent
	# directories (created as a side effect) may remain, and we remove them.
	cgs=$(e2e_cgroup_dirs | grep -v "/$E2E_CGROUP\$" || true)
	[ -z "$cgs" ] || fail "$(echo "$cgs" | wc -l) container cgroups left: $(echo "$cgs" | head -n 5 | tr '\n' ' ')..."
	e2e_cgroup_dirs | while read -r d; do rmdir "$d" || fail "cannot remove $d"; done
	cgs=$(e2e_cgroup_dirs)
	[ -z "$cgs" ] || fail "cgroups left: $cgs"
	if e2e_systemd; then
		left=$(e2e_units)
		[ -z "$left" ] || {
			# shellcheck disable=SC2086
			systemctl list-units --all --no-pager $left || true
			fail "units left: ${left//$'\n'/ }"
		}
		echo "  ok: no unit and no cgroup left (${E2E_UNITS[*]})"
	else
		echo "  ok: no cgroup left under /$E2E_CGROUP"
	fi
	for d in $(e2e_cgroup_junk); do
		echo "  note: removing $d: the engine made it in the tmpfs /sys/fs/cgroup (see the WARNING above)"
		rm -rf "$d"
	done
	if declare -F e2e_engine_leftovers >/dev/null; then
		e2e_engine_leftovers
	fi
	left=$(e2e_untrack_dirs)
	[ -z "$left" ] || fail "$left"
	[ ${#E2E_TRACKED[@]} = 0 ] || echo "  ok: removed what the engine made in ${E2E_TRACKED[*]}"
}

# e2e_track_dirs DIR...: host directories an engine creates outside the temp
# dir (/run/docker, /run/containerd/s, ...). Those that do not exist yet are
# removed at the end, as long as they hold nothing but empty directories.
E2E_TRACKED=()
e2e_track_dirs() {
	local d
	for d in "$@"; do
		[ -e "$d" ] || E2E_TRACKED+=("$d")
	done
}
e2e_untrack_dirs() {
	local d force=${1:-} others
	others=$(e2e_other_runs)
	if [ -n "$others" ]; then
		echo "e2e: another e2e run is active (pids $others): leaving ${E2E_TRACKED[*]} alone" >&2
		return 0
	fi
	for d in "${E2E_TRACKED[@]}"; do
		[ -d "$d" ] || continue
		# Never under something mounted since (a cgroup hierarchy, say).
		if awk -v t="$d" '$5 == t || index($5, t "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
			continue
		fi
		# After a forced stop: the sockets of shims killed by the trap (only
		# those no live socket is bound to).
		if [ -n "$force" ]; then
			find "$d" -type s | while read -r f; do
				grep -qF " $f" /proc/net/unix || rm -f "$f"
			done
		fi
		find "$d" -depth -type d -empty -delete 2>/dev/null
		if [ -e "$d" ]; then
			echo "left in $d: $(find "$d" | head -5 | tr '\n' ' ')"
		fi
	done
	return 0
}

# The EXIT trap: force everything of this run away, whatever state it is in.
e2e_cleanup() {
	local rc=$? fn p d m u
	trap - EXIT INT TERM
	set +e
	for fn in "${E2E_CLEANUP_FNS[@]}"; do "$fn" >/dev/null 2>&1; done
	cd / || true
	# The containers' units: stopped (their processes killed), failed ones forgotten.
	if e2e_systemd && [ -n "${E2E_TMP:-}" ]; then
		for u in $(e2e_units); do
			e2e_log "e2e: cleanup: stopping leftover unit $u"
			systemctl stop "$u" 2>/dev/null
			systemctl reset-failed "$u" 2>/dev/null
		done
	fi
	if [ -n "${E2E_TMP:-}" ] && [ -d "$E2E_TMP" ]; then
		for _ in 1 2 3; do
			p=$( (e2e_cgroup_pids; e2e_tmp_pids) | sort -un)
			[ -n "$p" ] || break
			e2e_log "e2e: cleanup: killing leftover processes $(echo $p)"
			# shellcheck disable=SC2086
			kill -KILL $p 2>/dev/null
			sleep 0.5
		done
		for _ in 1 2 3; do
			m=$(e2e_tmp_mounts)
			[ -n "$m" ] || break
			for d in $m; do umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null; done
		done
		e2e_cgroup_dirs | while read -r d; do rmdir "$d" 2>/dev/null; done
		for d in $(e2e_cgroup_junk); do rm -rf "$d"; done
		if [ -n "$(e2e_cgroup_dirs)" ]; then
			e2e_log "e2e: cleanup: could not remove $(e2e_cgroup_dirs | tr '\n' ' ')"
		fi
		e2e_untrack_dirs force >&2
		if [ -z "$(e2e_tmp_mounts)" ]; then
			rm -rf --one-file-system "$E2E_TMP"
		else
			e2e_log "e2e: cleanup: mounts remain, keeping $E2E_TMP: $(e2e_tmp_mounts | tr '\n' ' ')"
		fi
	fi
	exit "$rc"
}

# e2e_finish: the last step (leftovers) and the summary; exits.
e2e_finish() {
	step leftovers e2e_check_leftovers
	e2e_summary
	[ "$E2E_FAILED" = 0 ] || exit 1
	exit 0
}

# ---------------------------------------------------------------- image

# e2e_rootfs_tar OUT.tar: the test image's root filesystem, made like
# hack/mkbundle.sh makes a bundle's (static busybox, applet links, /etc/passwd
# and /etc/group) plus /www/index.html for httpd; a copy of $E2E_ROOTFS_TAR when
# set (hack/vmtest/engines.sh makes it once for all its runs: ~25 s under TCG).
e2e_rootfs_tar() {
	local out=$1 b=$E2E_TMP/imgbundle
	if [ -n "${E2E_ROOTFS_TAR:-}" ]; then
		cp "$E2E_ROOTFS_TAR" "$out" || e2e_die "cannot copy E2E_ROOTFS_TAR ($E2E_ROOTFS_TAR)"
		return
	fi
	e2e_need /bin/busybox busybox-static
	e2e_need python3 python3
	TONG=$RUNTIME_BIN CGROUPS_PATH=/unused "$E2E_REPO/hack/mkbundle.sh" "$b" >/dev/null ||
		e2e_die "hack/mkbundle.sh failed"
	mkdir -p "$b/rootfs/www"
	echo "hello from the tong e2e image" >"$b/rootfs/www/index.html"
	tar -C "$b/rootfs" --numeric-owner -cf "$out" . || e2e_die "tar failed"
	rm -rf "$b"
}

# e2e_stop_pid PIDFILE [SECONDS]: a daemon's SIGTERM, up to SECONDS (20) for it to exit,
# then SIGKILL. The pid file stays (dockerd removes its own: the leftovers check looks).
e2e_stop_pid() {
	local pid i
	[ -f "$1" ] || return 0
	pid=$(cat "$1" 2>/dev/null) || pid=
	if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
		for ((i = 0; i < ${2:-20} * 5; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
}

# e2e_free_port: a free TCP port on 127.0.0.1.
e2e_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# e2e_oci_archive ROOTFS.tar OUT.tar REF [CONFIG]: an OCI image layout archive (one
# uncompressed layer: ROOTFS.tar) that `ctr images import` names REF. CONFIG: the image
# config's "config" object as JSON (default: `sh` with a PATH).
e2e_oci_archive() {
	python3 - "$@" <<'PY'
import hashlib, io, json, os, sys, tarfile, time
rootfs, out, ref = sys.argv[1:4]
run = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {
    "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
blobs = {}
def add(data, media):
    d = hashlib.sha256(data).hexdigest()
    blobs[d] = data
    return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}
layer_data = open(rootfs, "rb").read()
layer = add(layer_data, "application/vnd.oci.image.layer.v1.tar")
config = {
    "architecture": "amd64", "os": "linux",
    "created": "2000-01-01T00:00:00Z",
    "config": run,
    "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
}
cfg = add(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg, "layers": [layer]}
man = add(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
man["annotations"] = {"io.containerd.image.name": ref,
                      "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}
man["platform"] = {"architecture": "amd64", "os": "linux"}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [man]}
with tarfile.open(out, "w") as t:
    def put(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = int(time.time()); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
    put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    put("index.json", json.dumps(index).encode())
    for d, data in blobs.items():
        put("blobs/sha256/" + d, data)
PY
}
