#!/usr/bin/env bash
# Starts Docker's engine for CI when it is not running: in the background, without touching the host's firewall or
# bridges (--iptables=false --bridge=none: containers use host networking only), its log in EVA_CI_CACHE.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd is not installed (Debian package docker.io)"; exit 1; }
cache=${EVA_CI_CACHE:-/var/cache/eva-ci}
mkdir -p "$cache"
nohup dockerd --iptables=false --ip6tables=false --bridge=none >"$cache/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "dockerd did not start within 60 s; its log:"; tail -n 20 "$cache/dockerd.log"; exit 1
