#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine: `config -q` through whichever compose is installed
# (docker-compose v1 or the `docker compose` v2 plugin), then that every host file it mounts or builds from
# exists. Prints "skipped: no docker-compose" and exits 0 when neither compose is installed; any failure exits 1.
#   usage: scripts/check-compose.sh [compose-file...]  (default: docker-compose.yml at the repository root)
# Several files are checked as compose merges them (`-f a -f b`): an override such as docker-compose.fleet.yml.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(docker-compose.yml)
file_args=()
for file in "${files[@]}"; do
  if [[ ! -f "$file" ]]; then
    echo "check-compose: $file not found" >&2
    exit 1
  fi
  file_args+=(-f "$file")
done
file="${files[*]}"

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "check-compose: skipped: no docker-compose (neither docker-compose nor the docker compose plugin is installed)"
  exit 0
fi

failures=0
fail () { echo "check-compose: FAIL: $*" >&2; failures=$((failures + 1)); }

echo "check-compose: using $("${compose[@]}" version 2>/dev/null | head -n 1)"

# 1. The file is valid compose, with every variable it requires set.
if JWT_SECRET=ci-check-secret-000000000000000000000 "${compose[@]}" "${file_args[@]}" config -q; then
  echo "check-compose: ok: config -q"
else
  fail "config -q rejected $file"
fi

# 2. Without JWT_SECRET it must refuse (the :? guard), unless a .env file may be supplying it.
if [[ ! -f .env ]]; then
  if env -u JWT_SECRET "${compose[@]}" "${file_args[@]}" config -q >/dev/null 2>&1; then
    fail "config accepted $file without JWT_SECRET: the \${JWT_SECRET:?...} guard is missing"
  else
    echo "check-compose: ok: refuses to start without JWT_SECRET"
  fi
fi

# 3. Every host path it mounts (short syntax "- ./x:/y[:ro]") exists; mounted .sh init scripts are executable
#    (the postgres image sources a non-executable one into its own shell instead of running it).
mapfile -t mounts < <(sed -nE 's/^[[:space:]]*-[[:space:]]*"?(\.\/[^:"]+):.*/\1/p' "${files[@]}")
if [[ ${#mounts[@]} -eq 0 ]]; then
  fail "found no ./ host paths in $file (expected the init-script mounts)"
fi
for path in "${mounts[@]}"; do
  if [[ ! -e "$path" ]]; then
    fail "mounted host path $path does not exist"
  elif [[ "$path" == *.sh && ! -x "$path" ]]; then
    fail "mounted script $path is not executable (chmod +x, and commit the mode)"
  else
    echo "check-compose: ok: $path"
  fi
done

# 4. Every build context exists and has its Dockerfile.
mapfile -t contexts < <(sed -nE 's/^[[:space:]]*(build|context):[[:space:]]*"?(\.[^"[:space:]]*)"?[[:space:]]*$/\2/p' "${files[@]}")
for ctx in "${contexts[@]}"; do
  if [[ ! -f "$ctx/Dockerfile" ]]; then
    fail "build context $ctx has no Dockerfile"
  else
    echo "check-compose: ok: build context $ctx"
  fi
done

# 5. The init scripts at least parse.
for script in docker/initdb/*.sh; do
  [[ -e "$script" ]] || continue
  bash -n "$script" || fail "$script does not parse"
done

if [[ $failures -gt 0 ]]; then
  echo "check-compose: $failures check(s) failed" >&2
  exit 1
fi
echo "check-compose: all checks passed"
