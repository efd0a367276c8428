#!/usr/bin/env bash
# Builds the image, runs the 5-node compose network and checks it as a user would:
#   1. every node reaches height 3 with 4 peers and reports healthy;
#   2. an event whose payload is on the content container goes to `finalized` by itself
#      (the containers' attesters fetch it);
#   3. node4 stopped: the other four go on; started again: it catches up;
#   4. all five report the same block id at a common height.
# Then it removes the containers and their volumes. Needs a Docker engine and docker compose
# (or docker-compose), and a release `node` binary on the host for the CLI
# (swift build -c release --product node).
# Usage: Docker/smoke.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
compose_file=Docker/docker-compose.yml
if docker compose version >/dev/null 2>&1; then compose=(docker compose -f "$compose_file")
else compose=(docker-compose -f "$compose_file"); fi
cli=.build/release/node
[ -x "$cli" ] || { echo "smoke: build the CLI first: swift build -c release --product node" >&2; exit 1; }
rpc() { echo "http://127.0.0.1:$((26657 + 10 * $1))"; }
field() { "$cli" status --node "$(rpc "$1")" --output json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null || echo 0; }
fail() { echo "smoke: FAILED: $*" >&2; "${compose[@]}" logs --tail 20 >&2 || true; exit 1; }
cleanup() { "${compose[@]}" down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
work=$(mktemp -d)
trap cleanup EXIT

if [ "${1:-}" != "--no-build" ]; then
  echo "building the image (docker build -f Docker/Dockerfile -t membria-node .)"
  docker build -q -f Docker/Dockerfile -t membria-node . >/dev/null
fi
"${compose[@]}" down -v >/dev/null 2>&1 || true
"${compose[@]}" up -d >/dev/null 2>&1

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do [ $SECONDS -lt $deadline ] || fail "$what (waited ${seconds}s)"; sleep 1; done
  echo "ok: $what"
}
all_at() { local i; for i in 0 1 2 3 4; do [ "$(field "$i" height)" -ge "$1" ] || return 1; done; }
all_peered() { local i; for i in 0 1 2 3 4; do [ "$(field "$i" peers)" -ge 4 ] || return 1; done; }
all_healthy() { [ "$("${compose[@]}" ps | grep -c '(healthy)')" -eq 5 ]; }
wait_for 120 "every node at height 3" all_at 3
wait_for 60 "every node has 4 peers" all_peered
wait_for 90 "every node container is healthy" all_healthy

# An event with its payload on the content container, signed with gateway 0's devnet key.
"$cli" init --home "$work/gateway" --genesis Genesis/devnet.json --devnet-index 0 >/dev/null
echo "{\"smoke\": \"$(date +%s%N)\"}" >"$work/payload.json"
artx=$(curl -sf --data-binary @"$work/payload.json" http://127.0.0.1:1984/tx) || fail "content server upload"
"$cli" propose-event --home "$work/gateway" --node "$(rpc 0)" --ar-tx-id "$artx" --payload "$work/payload.json" \
  --kind smoke --wait >/dev/null || fail "propose-event"
event_status() { "$cli" query events --node "$(rpc 2)" --kind smoke | awk '{print $2}' | head -1; }
finalized() { [ "$(event_status)" = finalized ]; }
wait_for 120 "the event is attested and finalized" finalized

"${compose[@]}" stop node4 >/dev/null 2>&1
before=$(field 0 height)
four_go_on() { [ "$(field 0 height)" -ge $((before + 3)) ]; }
wait_for 60 "node4 stopped: the four go on" four_go_on
"${compose[@]}" start node4 >/dev/null 2>&1
target=$(field 0 height)
caught_up() { [ "$(field 4 height)" -ge "$target" ]; }
wait_for 120 "node4 restarted and caught up to height $target" caught_up

ids=$(for i in 0 1 2 3 4; do curl -sf "$(rpc "$i")/blocks/$target" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; done | sort -u)
[ "$(echo "$ids" | wc -l)" -eq 1 ] || fail "nodes disagree on block $target: $ids"
echo "ok: all five agree on block $target ($ids)"
echo "smoke: passed"
