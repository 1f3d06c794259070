#!/bin/sh
# Installs the real components the end-to-end tests and benchmarks run against (Debian
# bookworm, as root): docker-registry, skopeo, dockerd, containerd, slapd, nginx, dbus-daemon, Go with grpc-go (for the kubelet-like gRPC client) and tools.
# apt starts no daemons here; the tests start and stop each one themselves.
# Then it builds the minimal Debian root the real-node test boots with systemd-nspawn
# (apps/node-patcher/test/node/build-root.sh: debootstrap from Debian's mirror, about 4-7 min on
# a fresh machine, once; cached under /var/cache/registry-proxy-node-root and reused after).
set -eu
pkgs="docker-registry apache2-utils skopeo umoci docker.io containerd runc slapd ldap-utils curl jq openssl ca-certificates busybox-static nginx-light dbus-daemon golang-go golang-google-grpc-dev chromium redis-server systemd-container debootstrap strace"
missing=""
for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root to install:$missing" >&2; exit 1; fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
else
  echo "install-deps: all packages present"
fi
if [ "$(id -u)" = 0 ]; then
  started=$(date +%s)
  sh "$(dirname "$0")/../apps/node-patcher/test/node/build-root.sh"
  echo "install-deps: node root ready (${REGISTRY_PROXY_NODE_ROOT:-/var/cache/registry-proxy-node-root}) in $(( $(date +%s) - started )) s"
else
  echo "install-deps: not root, so no node root for the real-node test (it needs root to boot it anyway)"
fi
