#!/usr/bin/env bash
# Usage: hack/mkbundle.sh DIR [ARGS...]
#
# Builds an OCI bundle in DIR: DIR/rootfs holds a static busybox with one
# symlink per applet plus a minimal /etc (passwd, group), and DIR/config.json
# is the runtime's default spec (`$TONG spec`) with terminal=false and
# process.args set to ARGS (default: sh) and linux.cgroupsPath set to
# $CGROUPS_PATH (default: /tong-test-<basename of DIR>).
#
# TONG selects the runtime used for `spec`; it defaults to the repo's
# target/$CARGO_BUILD_TARGET/release/tong (x86_64-unknown-linux-musl by default), then its
# debug build, then the glibc fallback's release build (hack/env.sh), then `tong` on PATH.
# TONG=/usr/sbin/runc works too. Safe to re-run on an existing DIR.
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [ARGS...]" >&2
	exit 2
fi
dir=$1
shift

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${TONG:-}" ]; then
	t=${CARGO_BUILD_TARGET:-x86_64-unknown-linux-musl}
	if [ -x "$here/target/$t/release/tong" ]; then
		TONG=$here/target/$t/release/tong
	elif [ -x "$here/target/$t/debug/tong" ]; then
		TONG=$here/target/$t/debug/tong
	elif [ -x "$here/target/x86_64-unknown-linux-gnu/release/tong" ]; then
		TONG=$here/target/x86_64-unknown-linux-gnu/release/tong
	elif command -v tong >/dev/null 2>&1; then
		TONG=$(command -v tong)
	else
		echo "mkbundle: no tong binary found (build it or set TONG=...)" >&2
		exit 1
	fi
fi

if [ ! -x /bin/busybox ]; then
	apt-get install -y -q busybox-static >/dev/null
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rootfs=$dir/rootfs

mkdir -p "$rootfs"
for d in bin sbin usr/bin usr/sbin proc sys dev tmp etc root home/tester var; do
	mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
chown 1000:1000 "$rootfs/home/tester"

cp -f /bin/busybox "$rootfs/bin/busybox"
chmod 755 "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] && continue
	ln -sfn busybox "$rootfs/bin/$applet"
done

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
tester:x:1000:
extra:x:2000:tester
nogroup:x:65534:
GROUP

# `spec` refuses to overwrite an existing config.json.
rm -f "$dir/config.json"
"$TONG" spec --bundle "$dir"

python3 - "$dir/config.json" "${CGROUPS_PATH:-/tong-test-$(basename "$dir")}" "$@" <<'PY'
import json, sys
path, cgpath, args = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = args or ["sh"]
# Without an absolute cgroupsPath the container's cgroups would nest under
# the caller's own cgroup; keep them at a predictable, easy to clean place.
cfg.setdefault("linux", {})["cgroupsPath"] = cgpath
with open(path, "w") as f:
    json.dump(cfg, f, indent="\t")
    f.write("\n")
PY
