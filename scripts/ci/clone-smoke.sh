#!/usr/bin/env bash
# A new user's install, end to end: `git clone` of this checkout into a directory only its owner can enter (mode
# 700, as /root or `mktemp -d`), then
#   1. npm ci, npm start: the embedded default answers GET /heartbeat/liveness 200;
#   2. npm run build, npm ci --omit=dev (the production install), npm start: liveness 200 again, on the same data.
# Each service gets SIGTERM and npm start must exit 0. Prints the time each phase took; exits 1 at the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
parent=$(mktemp -d)
chmod 700 "$parent"
app="$parent/eva-heartbeat-api"
server=
cleanup () {
  if [ -n "$server" ]; then kill -TERM -- "-$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  # The cluster staged for this clone (see src/embedded/os-user.ts) goes with it.
  if [ -L "$app/.data/pg" ]; then rm -rf "$(readlink "$app/.data/pg")"; fi
  rm -rf "$parent"
}
trap cleanup EXIT
say () { printf 'clone-smoke: %s\n' "$*"; }
seconds () { echo $(( $(date +%s) - $1 )); }

# Starts `npm start` in a process group of its own, waits for liveness 200, then SIGTERM and exit 0.
start_to_alive () {
  local label=$1 port started status=000
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  started=$(date +%s)
  PORT=$port DEMO_INTERVAL_SECONDS=1 setsid npm start >"$parent/$label.log" 2>&1 &
  server=$!
  for _ in $(seq 1 240); do
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/heartbeat/liveness" || true)
    [ "$status" = 200 ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$status" != 200 ]; then
    say "$label: no liveness 200 (last status $status); its output:"; tail -n 20 "$parent/$label.log"; return 1
  fi
  say "$label: liveness 200 $(seconds "$started") s after npm start"
  # SIGTERM to the service itself, as a process manager sends it (npm, sent one too, would exit 143 for it).
  local pid
  pid=$(pgrep -g "$server" -f '^node dist/server\.js')
  kill -TERM "$pid"
  local code=0
  wait "$server" || code=$?
  if [ "$code" -ne 0 ]; then say "$label: npm start exited $code after SIGTERM"; tail -n 20 "$parent/$label.log"; return 1; fi
  server=
}

git clone --quiet "$root" "$app"
cd "$app"
say "cloned into $app (parent mode $(stat -c %a "$parent"))"

t=$(date +%s)
npm ci --no-audit --no-fund --loglevel=error >"$parent/ci.log" 2>&1 || { tail -n 20 "$parent/ci.log"; exit 1; }
say "npm ci: $(seconds "$t") s"
start_to_alive "development install"

t=$(date +%s)
npm run -s build
# The production install itself: patch-package (postinstall) is a production dependency, so it applies the driver's
# patch here too (and fails the install when it no longer applies).
npm ci --omit=dev --no-audit --no-fund --loglevel=error >"$parent/omit-dev.log" 2>&1 || { tail -n 20 "$parent/omit-dev.log"; exit 1; }
if [ -e node_modules/typescript ]; then say "the production install still has typescript"; exit 1; fi
say "npm run build + production install: $(seconds "$t") s"
start_to_alive "production install"
say "ok"
