#!/bin/sh
# Builds (once) the minimal Debian root the real-node tests boot with systemd-nspawn:
# systemd as PID 1, dbus, and nothing else. A few minutes; the result is cached outside the
# repository and reused. Needs root, debootstrap and access to Debian's package mirror.
set -eu
ROOT="${1:-${REGISTRY_PROXY_NODE_ROOT:-/var/cache/registry-proxy-node-root}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -x "$ROOT/lib/systemd/systemd" ] && [ -f "$ROOT/.registry-proxy-complete" ] && exit 0
# One builder at a time (Jest runs test files in parallel workers): the others wait, then find it built.
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
[ -x "$ROOT/lib/systemd/systemd" ] && [ -f "$ROOT/.registry-proxy-complete" ] && exit 0
tmp="$ROOT.building.$$"
rm -rf "$tmp"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$tmp" "$MIRROR" >&2
# No getty, no network setup: the container only runs systemd, dbus and the kubelet stand-in.
rm -f "$tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
echo "registry-proxy-node" > "$tmp/etc/hostname"
touch "$tmp/.registry-proxy-complete"
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
