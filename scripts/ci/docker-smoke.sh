#!/usr/bin/env bash
# Builds the image and runs it twice, with host networking on loopback only:
#   0. without DATABASE_URL and without EMBEDDED_IN_PRODUCTION=true (the image sets NODE_ENV=production): exit 1;
#   1. the embedded default, opted in: runs as a non-root user, answers GET /heartbeat/liveness 200 marked
#      "demo": true, exits 0 on docker stop;
#   2. against PostgreSQL 15 (Debian's binaries, started here on 127.0.0.1) through DATABASE_URL: liveness 200.
# Starts dockerd when it is not running and builds the stand-in base image when it is missing (scripts/ci/).
# Passes the locally added CAs (/usr/local/share/ca-certificates, e.g. a TLS-intercepting proxy's) to npm ci in the
# build. Prints the build time, the image size and each run's time from `docker run` to liveness 200.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/ci"
image=eva-heartbeat-api:ci
node_image=${NODE_IMAGE:-node:24-bookworm-slim}
pg_bin=${PG15_BIN:-/usr/lib/postgresql/15/bin}
say () { printf 'docker-smoke: %s\n' "$*"; }
seconds () { echo $(( $(date +%s) - $1 )); }
free_port () { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

work=$(mktemp -d)
chmod 755 "$work"
containers=()
cleanup () {
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  if [ -f "$work/pg/postmaster.pid" ]; then runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$here/dockerd.sh"
"$here/base-image.sh" "$node_image"

ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
builder=()
docker buildx version >/dev/null 2>&1 || builder=(env DOCKER_BUILDKIT=0)
t=$(date +%s)
"${builder[@]}" docker build --network host --build-arg NODE_IMAGE="$node_image" --build-arg NPM_CA="$ca" -t "$image" "$root" >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log"; exit 1; }
build_s=$(seconds "$t")
size=$(docker image inspect --format '{{.Size}}' "$image")
say "build: ${build_s} s; image $image: $((size / 1000000)) MB on $node_image"
if docker history --no-trunc "$image" | grep -q -- '-----BEGIN CERTIFICATE'; then say "the CA is in the final image's history"; exit 1; fi

# Runs the image with host networking on a free loopback port; waits for liveness 200; docker stop must exit 0.
run_to_alive () {
  local label=$1; shift
  local port name status=000 t
  port=$(free_port)
  name="eva-ci-$label-$$"
  t=$(date +%s)
  containers+=("$name")
  docker run -d --name "$name" --network host -e HOST=127.0.0.1 -e PORT="$port" "$@" "$image" >/dev/null
  for _ in $(seq 1 240); do
    status=$(curl -s -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/heartbeat/liveness" || true)
    [ "$status" = 200 ] && break
    [ "$(docker inspect --format '{{.State.Running}}' "$name")" = true ] || break
    sleep 0.5
  done
  if [ "$status" != 200 ]; then say "$label: no liveness 200 (last status $status); its log:"; docker logs "$name" 2>&1 | tail -n 20; return 1; fi
  say "$label: liveness 200 $(seconds "$t") s after docker run: $(cat "$work/body")"
  local uid
  uid=$(docker exec "$name" id -u)
  if [ "$uid" = 0 ]; then say "$label: runs as root"; return 1; fi
  docker stop --time 20 "$name" >/dev/null
  local code
  code=$(docker inspect --format '{{.State.ExitCode}}' "$name")
  if [ "$code" != 0 ]; then say "$label: exit $code after docker stop"; docker logs "$name" 2>&1 | tail -n 20; return 1; fi
  say "$label: ran as uid $uid, exit 0 after docker stop"
}

# The image is production: the embedded demo only when asked for, and then every verdict says demo.
name="eva-ci-refused-$$"
containers+=("$name")
if docker run --name "$name" --network host -e HOST=127.0.0.1 -e PORT="$(free_port)" "$image" >"$work/refused.log" 2>&1; then
  say "embedded without EMBEDDED_IN_PRODUCTION=true: started, expected a refusal"; exit 1
fi
if ! grep -q 'EMBEDDED_IN_PRODUCTION=true' "$work/refused.log"; then say "embedded without the opt-in: unexpected output:"; cat "$work/refused.log"; exit 1; fi
say "embedded without EMBEDDED_IN_PRODUCTION=true: refused: $(cat "$work/refused.log")"
run_to_alive embedded -e EMBEDDED_IN_PRODUCTION=true
grep -q '"demo":true' "$work/body" || { say "embedded: the liveness body does not say demo"; exit 1; }

# PostgreSQL 15 with the migration applied and a fresh heartbeat row, as the scheduler writes it.
if [ ! -x "$pg_bin/postgres" ]; then say "skipped the DATABASE_URL run: $pg_bin is not installed (Debian package postgresql-15)"; exit 0; fi
pg_port=$(free_port)
cd "$work" # the postgres user may not enter the checkout (a clone in a mode-700 directory)
id -u postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
install -d -o postgres -g postgres -m 700 "$work/pg" "$work/pg-log"
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" --auth=trust --username=postgres --no-sync >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg-log/server.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off" start >/dev/null
psql=("$pg_bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres)
"${psql[@]}" -f "$root/db/migrations/001_eva_scheduler_heartbeat.sql" >/dev/null
"${psql[@]}" -c "insert into public.eva_scheduler_heartbeat (id, instance_id, last_poll_at, next_poll_at, status)
  values (1, 'scheduler-docker-ci', now(), now() + interval '1 hour', 'running')"
run_to_alive database-url -e DATABASE_URL="postgres://authenticator@127.0.0.1:$pg_port/postgres" -e JWT_SECRET=ci-docker-smoke-secret-0123456789abcdef
