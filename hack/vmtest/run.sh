#!/usr/bin/env bash
# Usage: hack/vmtest/run.sh [--] CMD [ARGS...]
#
# Runs CMD as root in a qemu VM whose kernel is Debian's (apt-get download
# linux-image-<version>-amd64, unpacked with dpkg-deb, never installed), on a
# cgroup v2 host (cgroup_no_v1=all; the systemd guests also boot hybrid or legacy v1), in one of these guests:
#
# busybox (default): a busybox init as PID 1, cgroup2 alone at /sys/fs/cgroup
#   with every controller enabled in the root's cgroup.subtree_control. The
#   root is an overlay: the host's / read-only (9p) under a tmpfs, so the
#   host's binaries, libraries, cargo-built test binaries, busybox, python3
#   and ip all work there unchanged; /tmp and /run are fresh tmpfs.
# systemd: Debian bookworm (debootstrap minbase with systemd, systemd-sysv,
#   dbus, udev, busybox-static, runc, crun; built once into an ext4 image with
#   mkfs.ext4 -d, cached and keyed by that list) booting systemd as PID 1,
#   which mounts cgroup2 and manages it. The disk is opened snapshot=on: the
#   cached image never changes. CMD runs from a unit (vmtest-job.service,
#   Type=simple) once the system is up, then the guest powers off. The host's
#   / is seen read-only at /mnt/host.
#
# In both, the checkout is shared read-write at its host path. CMD runs from
# the checkout; its stdout and stderr come back through a 9p share (the
# serial console is slow) and are printed as they arrive.
#
# Exit status: CMD's; 124 when VMTEST_TIMEOUT ran out; 125 when the guest
# never reported a status (it did not boot, crashed or failed to set up).
#
# Environment:
#   VMTEST_GUEST=busybox|systemd|engines  the guest (default busybox);
#                           engines: the systemd guest's image plus docker.io,
#                           containerd, podman, conmon and criu (a second cached image)
#   VMTEST_CGROUP=v2|hybrid|legacy  the systemd guests' cgroup layout: v2
#                           (default, cgroup_no_v1=all), hybrid (v1 controllers
#                           and cgroup2 at /sys/fs/cgroup/unified:
#                           systemd.unified_cgroup_hierarchy=0) or legacy
#                           (v1 alone: also systemd.legacy_systemd_cgroup_controller=1)
#   VMTEST_TIMEOUT=SECONDS  whole run, boot included (default 3600)
#   VMTEST_ACCEL=auto|kvm|tcg|kvm,tcg  accelerators to try in turn until one
#                           boots the guest; auto (default): KVM then TCG where
#                           /dev/kvm is usable (not PVM's kvm_pvm), else TCG
#   VMTEST_MEM=3G VMTEST_CPUS=2
#   VMTEST_SWAP_MB=0        zram swap in the guest (default none, as on most
#                           hosts: with swap, a memory limit alone OOM-kills nothing)
#   VMTEST_KERNEL=6.1.0-NN-amd64  kernel package version (default: the one
#                           linux-image-amd64 depends on, cached after first use)
#   VMTEST_CACHE=DIR        downloads and built images (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/tong-vmtest)
#   VMTEST_ENV="NAME..."    extra variables to pass into the guest (PATH, HOME,
#                           RUST_*, TONG_*, CARGO_TERM_*, CI, NO_COLOR pass anyway)
#   VMTEST_VERBOSE=1        print the guest's console and timings
#   VMTEST_KEEP=1           keep the exchange dir (job, output, console log)
set -euo pipefail

if [ "${1:-}" = -- ]; then shift; fi
if [ $# -eq 0 ]; then
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "$here/../.." && pwd)
cache=${VMTEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/tong-vmtest}
timeout=${VMTEST_TIMEOUT:-3600}
mem=${VMTEST_MEM:-3G}
cpus=${VMTEST_CPUS:-2}
swap_mb=${VMTEST_SWAP_MB:-0}
guest=${VMTEST_GUEST:-busybox}
case $guest in busybox | systemd | engines) ;; *)
	echo "vmtest: VMTEST_GUEST: unknown guest $guest (busybox, systemd or engines)" >&2
	exit 125
	;;
esac
layout=${VMTEST_CGROUP:-v2}
case $guest/$layout in */v2 | systemd/hybrid | systemd/legacy | engines/hybrid | engines/legacy) ;; *)
	echo "vmtest: VMTEST_CGROUP: $layout is v2, hybrid or legacy, and only v2 for the busybox guest" >&2
	exit 125
	;;
esac
verbose=${VMTEST_VERBOSE:-0}
msize=512000

# fd 3: stderr, also where bash's own job reports are not sent.
exec 3>&2
log() { echo "vmtest: $*" >&3; }
fail() { log "$*"; exit 125; }

[ "$(id -u)" = 0 ] || fail "run as root (the 9p shares use security_model=passthrough)"

apt_updated=0
apt_update() {
	if [ $apt_updated = 0 ]; then
		apt-get update -qq >/dev/null || true
		apt_updated=1
	fi
}

# Host tools, from apt when missing.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
command -v xz >/dev/null || need+=(xz-utils)
command -v dpkg-deb >/dev/null || fail "dpkg-deb missing: this needs a Debian host"
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt_update
	# Machines whose qemu-utils comes from backports need qemu-system-x86 from there too
	# (bookworm's 7.2 conflicts with backports' qemu-utils).
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			-t "$(. /etc/os-release && echo "$VERSION_CODENAME")-backports" "${need[@]}" >/dev/null ||
		fail "cannot install ${need[*]}"
fi
PATH=$PATH:/sbin:/usr/sbin

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# apt-get download into DIR (the download dir need not be _apt's).
apt_download() {
	local dir=$1
	shift
	(cd "$dir" && apt-get download -qq "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
	ls "$dir"/*.deb >/dev/null 2>&1
}

# Prints the uncompressed ELF kernel found in a bzImage (the logic of the
# kernel's scripts/extract-vmlinux: try each compressed payload in turn).
extract_vmlinux() {
	local img=$1 out=$2 tmp=$2.tmp
	try() {
		local pos
		for pos in $(tr "$1\n$2" "\n$2=" <"$img" | grep -abo "^$2"); do
			pos=${pos%%:*}
			tail -c+"$pos" "$img" | $3 >"$tmp" 2>/dev/null || true
			if [ "$(head -c4 "$tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$tmp" "$out"
				return 0
			fi
		done
		return 1
	}
	try '\3757zXZ\000' abcde 'xz -dc' ||
		try '\037\213\010' xy 'gzip -dc' ||
		try '(\265/\375' xxx 'zstd -dc' ||
		{ rm -f "$tmp"; return 1; }
}

setup_kernel() {
	kver=${VMTEST_KERNEL:-}
	if [ -z "$kver" ] && [ -s "$cache/kernel" ]; then
		kver=$(cat "$cache/kernel")
	fi
	if [ -z "$kver" ]; then
		kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-//p' | head -n1)
		if [ -z "$kver" ]; then
			apt_update
			kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-//p' | head -n1)
		fi
		[ -n "$kver" ] || fail "apt knows no linux-image-amd64 (set VMTEST_KERNEL=6.1.0-NN-amd64)"
	fi
	kdir=$cache/linux-$kver
	if [ ! -e "$kdir/.ok" ]; then
		log "fetching Debian's kernel linux-image-$kver (once; cached in $kdir)"
		rm -rf "$kdir"
		mkdir -p "$kdir/dl"
		if ! apt_download "$kdir/dl" "linux-image-$kver"; then
			apt_update
			apt_download "$kdir/dl" "linux-image-$kver" || fail "cannot download linux-image-$kver"
		fi
		dpkg-deb -x "$kdir"/dl/*.deb "$kdir/tree"
		rm -rf "$kdir/dl"
		[ -f "$kdir/tree/boot/vmlinuz-$kver" ] || fail "no /boot/vmlinuz-$kver in linux-image-$kver"
		# Debian ships no modules.dep; the guest's modprobe needs one.
		depmod -b "$kdir/tree" "$kver"
		if extract_vmlinux "$kdir/tree/boot/vmlinuz-$kver" "$kdir/vmlinux"; then
			:
		else
			log "cannot extract vmlinux; booting the bzImage (slower)"
		fi
		touch "$kdir/.ok"
	fi
	echo "$kver" >"$cache/kernel"
}

setup_busybox() {
	bbdir=$cache/busybox-static
	if [ ! -e "$bbdir/.ok" ]; then
		log "fetching busybox-static (once)"
		rm -rf "$bbdir"
		mkdir -p "$bbdir/dl"
		if ! apt_download "$bbdir/dl" busybox-static; then
			apt_update
			apt_download "$bbdir/dl" busybox-static || fail "cannot download busybox-static"
		fi
		dpkg-deb -x "$bbdir"/dl/*.deb "$bbdir/tree"
		rm -rf "$bbdir/dl"
		touch "$bbdir/.ok"
	fi
	busybox=$bbdir/tree/bin/busybox
	[ -x "$busybox" ] || fail "no bin/busybox in busybox-static"
}

# The initramfs: static busybox, /init and the modules that mount the 9p
# shares and the overlay root, in load order. Rebuilt when init changes.
setup_initramfs() {
	local sum tmp m path n=0
	sum=$(cat "$here/init" "$busybox" | sha256sum | cut -c1-16)
	initrd=$kdir/initramfs-$sum.cpio
	[ -s "$initrd" ] && return 0
	tmp=$(mktemp -d "$kdir/initramfs.XXXXXX")
	mkdir -p "$tmp/bin" "$tmp/modules"
	cp "$busybox" "$tmp/bin/busybox"
	cp "$here/init" "$tmp/init"
	chmod 755 "$tmp/init" "$tmp/bin/busybox"
	: >"$tmp/modules/order"
	for m in virtio_pci 9pnet_virtio 9p overlay virtio_blk ext4; do
		modprobe -d "$kdir/tree" -S "$kver" --show-depends "$m" >"$tmp/deps" ||
			fail "module $m not found in linux-image-$kver"
		while read -r _ path _; do
			name=$(basename "$path")
			name=${name%.xz}
			name=${name%.zst}
			name=${name%.gz}
			grep -qx "[0-9]*-$name" "$tmp/modules/order" && continue
			n=$((n + 1))
			case $path in
			*.xz) xz -dc "$path" ;;
			*.zst) zstd -qdc "$path" ;;
			*.gz) gzip -dc "$path" ;;
			*) cat "$path" ;;
			esac >"$tmp/modules/$n-$name"
			echo "$n-$name" >>"$tmp/modules/order"
		done < <(grep '^insmod ' "$tmp/deps")
	done
	rm -f "$tmp/deps"
	echo "$msize" >"$tmp/modules/msize"
	(cd "$tmp" && find . -mindepth 1 | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$tmp"
	find "$kdir" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "$(basename "$initrd")" -delete
}

# The systemd guest's disk: Debian bookworm from debootstrap, made into a sparse
# ext4 image by mkfs.ext4 -d (no loop mount). Keyed by the suite, the package
# list and this recipe's version; rebuilt only when one of them changes.
SD_SUITE=bookworm
SD_PACKAGES="systemd systemd-sysv dbus udev busybox-static procps iproute2 runc crun"
# The engines guest: the same, plus the engines hack/e2e drives and what its steps use
# (kmod: the kernel asks modprobe for bridge and veth, which docker's network needs;
# apparmor: Debian's kernel runs AppArmor, and dockerd then loads its docker-default
# profile with apparmor_parser, as on a stock Debian where docker.io recommends it;
# criu: checkpoint and restore, which the host's newer kernels break for Debian's 3.17,
# its network lock for --tcp-established using iptables).
SD_ENGINE_PACKAGES="docker.io containerd podman conmon containernetworking-plugins uidmap python3 iptables kmod apparmor criu"
SD_RECIPE=2
# The engines image's own recipe steps (below); part of its key only.
SD_ENGINE_RECIPE=1
# Units the engine packages enable that must not start at boot (podman-restart.service
# would run podman at boot, making /var/lib/containers): hack/e2e starts each
# engine's daemon itself, in a temp dir of its own.
SD_ENGINE_MASK="docker.service docker.socket containerd.service podman.service podman.socket podman-restart.service podman-auto-update.service podman-auto-update.timer"
setup_systemd_image() {
	local key tmp t0=$SECONDS flavour=systemd extra='' u
	if [ "$guest" = engines ]; then
		flavour=engines
		SD_PACKAGES+=" $SD_ENGINE_PACKAGES"
		extra="engines $SD_ENGINE_RECIPE $SD_ENGINE_MASK"
	fi
	key=$(printf '%s\n' "$SD_SUITE" "$SD_PACKAGES" "$SD_RECIPE" ${extra:+"$extra"} | sha256sum | cut -c1-12)
	sdimg=$cache/$flavour-$SD_SUITE-$key.img
	[ -s "$sdimg" ] && return 0
	if ! command -v debootstrap >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
		log "installing debootstrap e2fsprogs"
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap e2fsprogs >/dev/null ||
			fail "cannot install debootstrap"
	fi
	log "building the systemd guest's disk ($SD_SUITE: $SD_PACKAGES; once, cached in $cache)"
	tmp=$(mktemp -d "$cache/systemd-build.XXXXXX")
	if ! debootstrap --variant=minbase --include="${SD_PACKAGES// /,}" "$SD_SUITE" "$tmp/root" \
		"${VMTEST_MIRROR:-http://deb.debian.org/debian}" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 20 "$tmp/debootstrap.log" >&2
		rm -rf "$tmp"
		fail "debootstrap $SD_SUITE failed"
	fi
	rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
	ln -sfn /lib/systemd/system/multi-user.target "$tmp/root/etc/systemd/system/default.target"
	# No kmod in the image (the kernel's modules come from the host): its unit only fails.
	ln -sfn /dev/null "$tmp/root/etc/systemd/system/kmod-static-nodes.service"
	if [ "$guest" = engines ]; then
		for u in $SD_ENGINE_MASK; do ln -sfn /dev/null "$tmp/root/etc/systemd/system/$u"; done
	fi
	# Mount points init fills in before systemd starts.
	mkdir -p "$tmp/root/mnt/host" "$tmp/root/vmtest/x"
	# 4 GiB sparse: room for the tests' bundles (writes go to qemu's snapshot).
	if ! mkfs.ext4 -q -F -L tong-vmtest -d "$tmp/root" "$tmp/disk.img" 4G >"$tmp/mkfs.log" 2>&1; then
		cat "$tmp/mkfs.log" >&2
		rm -rf "$tmp"
		fail "mkfs.ext4 -d failed"
	fi
	mv "$tmp/disk.img" "$sdimg"
	rm -rf "$tmp"
	find "$cache" -maxdepth 1 -name "$flavour-*.img" ! -name "$(basename "$sdimg")" -delete
	log "built $(basename "$sdimg") in $((SECONDS - t0))s ($(du -h "$sdimg" | cut -f1) on disk)"
}

# One setup at a time per cache (a concurrent first run would download twice).
exec 9>"$cache/.lock"
flock 9
setup_kernel
setup_busybox
setup_initramfs
if [ "$guest" != busybox ]; then setup_systemd_image; fi
flock -u 9

# The exchange dir: conf and job in, output and status out.
x=$(mktemp -d "${TMPDIR:-/tmp}/tong-vmtest.XXXXXX")
qpid=
tails=()
# shellcheck disable=SC2317 # called by trap
cleanup() {
	if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; fi
	for t in "${tails[@]}"; do kill "$t" 2>/dev/null || true; done
	if [ "${VMTEST_KEEP:-0}" = 1 ]; then log "kept $x"; else rm -rf "$x"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

{
	printf 'CHECKOUT=%q\n' "$checkout"
	printf 'KVER=%q\n' "$kver"
	printf 'MODTREE=%q\n' "$kdir/tree"
	printf 'GUEST_HOSTNAME=%q\n' tong-vmtest
	printf 'SWAP_MB=%q\n' "$swap_mb"
	printf 'GUEST=%q\n' "${guest/engines/systemd}"
} >"$x/conf"
{
	echo '# generated by hack/vmtest/run.sh'
	printf 'export HOME=/root USER=root LOGNAME=root\n'
	for v in $(compgen -e); do
		case $v in
		PATH | TERM | CI | NO_COLOR | RUST_* | TONG_* | CARGO_TERM_*) ;;
		*) [[ " ${VMTEST_ENV:-} " == *" $v "* ]] || continue ;;
		esac
		printf 'export %s=%q\n' "$v" "${!v}"
	done
	printf 'cd %q || exit 125\n' "$checkout"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$x/job"

accel=${VMTEST_ACCEL:-auto}
if [ "$accel" = auto ]; then
	# PVM's /dev/kvm (kvm_pvm) cannot run a stock kernel (qemu fails setting
	# MSRs); elsewhere try KVM and fall back to TCG when it does not boot.
	if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm,tcg; else accel=tcg; fi
fi

if [ -s "$kdir/vmlinux" ] && [ "${VMTEST_BZIMAGE:-0}" != 1 ]; then
	kernel=$kdir/vmlinux
else
	kernel=$kdir/tree/boot/vmlinuz-$kver
fi
cmdline="console=ttyS0 quiet panic=-1 mitigations=off rdinit=/init"
case $layout in
v2) cmdline+=" cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
hybrid) cmdline+=" systemd.unified_cgroup_hierarchy=0" ;;
legacy) cmdline+=" systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
esac
disk=()
if [ "$guest" != busybox ]; then
	cmdline+=" systemd.show_status=0"
	disk=(-drive "file=$sdimg,format=raw,if=virtio,snapshot=on")
fi

# Runs the VM once with accel $1; sets qrc, booted, timed_out.
boot() {
	local acc=$1 cpu t0 deadline boot_deadline
	rm -f "$x/booted" "$x/ready" "$x/status" "$x/init-error" "$x/console.log"
	: >"$x/stdout"
	: >"$x/stderr"
	if [ "$acc" = kvm ]; then cpu=host; else cpu=max; acc=tcg,thread=multi; fi
	qemu-system-x86_64 -nodefaults -no-user-config -no-reboot -display none \
		-machine pc -accel "$acc" -cpu "$cpu" -m "$mem" -smp "$cpus" \
		-kernel "$kernel" -initrd "$initrd" -append "$cmdline" "${disk[@]}" \
		-chardev file,id=con,path="$x/console.log" -serial chardev:con \
		-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
		-virtfs local,path="$checkout",mount_tag=checkout,security_model=passthrough,multidevs=remap \
		-virtfs local,path="$x",mount_tag=xchg,security_model=passthrough \
		</dev/null >"$x/qemu.log" 2>&1 &
	qpid=$!
	t0=$(date +%s.%N)
	tail -n +1 -f --pid="$qpid" "$x/stdout" &
	tails+=($!)
	tail -n +1 -f --pid="$qpid" "$x/stderr" >&2 &
	tails+=($!)
	if [ "$verbose" = 1 ]; then
		tail -n +1 -F --pid="$qpid" "$x/console.log" 2>/dev/null | sed 's/^/console: /' >&2 &
		tails+=($!)
	fi
	deadline=$((SECONDS + timeout))
	# A KVM that cannot run this kernel fails or hangs before init.
	boot_deadline=$((SECONDS + ${VMTEST_BOOT_TIMEOUT:-$([ "$1" = kvm ] && echo 30 || echo 300)}))
	booted=0 timed_out=0 boot_secs=
	# (bash would report a qemu killed by a signal as "Aborted ...")
	watch "$1" 2>/dev/null
}

# The rest of boot(), with its locals: watch qemu and the deadlines.
watch() {
	while kill -0 "$qpid" 2>/dev/null; do
		if [ $booted = 0 ] && [ -e "$x/booted" ]; then
			booted=1
			boot_secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}')
		fi
		if [ $booted = 0 ] && [ $SECONDS -ge $boot_deadline ]; then
			log "the guest did not reach init in time ($1)"
			kill "$qpid" 2>/dev/null || true
			break
		fi
		if [ $SECONDS -ge $deadline ]; then
			log "timed out after ${timeout}s; stopping the VM"
			timed_out=1
			kill "$qpid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	qrc=0
	wait "$qpid" || qrc=$?
	qpid=
	for t in "${tails[@]}"; do wait "$t" 2>/dev/null || true; done
	tails=()
	if [ "$verbose" = 1 ] || [ $booted = 1 ]; then
		log "accel $1: init reached ${boot_secs:-?}s after qemu started (guest uptime $(cat "$x/booted" 2>/dev/null || echo ?)s, ready at $(cat "$x/ready" 2>/dev/null || echo ?)s)"
	fi
}

for a in ${accel//,/ }; do
	case $a in kvm | tcg) ;; *) fail "VMTEST_ACCEL: unknown accelerator $a (auto, kvm, tcg or kvm,tcg)" ;; esac
	boot "$a"
	if [ $booted = 1 ] || [ $timed_out = 1 ]; then break; fi
	log "accel $a: no boot (qemu exit $qrc)"
	[ -s "$x/qemu.log" ] && sed 's/^/qemu: /' "$x/qemu.log" | tail -n 5 >&2
done

if [ -s "$x/status" ]; then
	exit "$(cat "$x/status")"
fi
if [ "$timed_out" = 1 ]; then
	exit 124
fi
log "the guest reported no status (qemu exit $qrc)"
[ -s "$x/init-error" ] && log "guest init: $(cat "$x/init-error")"
[ -s "$x/qemu.log" ] && sed 's/^/qemu: /' "$x/qemu.log" | tail -n 20 >&2
[ -s "$x/console.log" ] && sed 's/^/console: /' "$x/console.log" | tail -n 40 >&2
exit 125
