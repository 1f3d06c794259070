#!/bin/sh
# Installs the real components the end-to-end tests and benchmarks run against (Debian
# bookworm, as root): docker-registry, skopeo, dockerd, containerd, slapd, nginx, dbus-daemon and tools.
# apt starts no daemons here; the tests start and stop each one themselves.
set -eu
pkgs="docker-registry apache2-utils skopeo umoci docker.io containerd runc slapd ldap-utils curl jq openssl ca-certificates busybox-static nginx-light dbus-daemon systemd-container debootstrap"
missing=""
for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
if [ -z "$missing" ]; then echo "install-deps: all packages present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root to install:$missing" >&2; exit 1; fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
