#!/usr/bin/env bash
# Consensus traffic and finality at 5 to 200 validators, in the simulator (virtual time, no
# faults, release build): messages and bytes each validator receives per height, and finality
# (first honest start of a height to each honest commit of it) p50/p99.
# Usage: Scripts/sim-scale.sh [heights, default 40] [seed, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
heights=${1:-40}
seed=${2:-1}
Scripts/install-deps.sh >/dev/null
swift build -c release --product node | tail -1
run() { .build/release/node simulate --seed "$seed" --heights "$heights" --faults none --figures "$@" | tail -1; }
echo "# full mesh, links uniform 50-150 ms one way"
for n in 5 25 50 100; do run --validators "$n" --links uniform:50-150; done
echo "# six regions (wan), full mesh"
for n in 5 25 50 100; do run --validators "$n" --links wan; done
echo "# six regions (wan), each validator dials 10 peers"
for n in 25 50 100 200; do run --validators "$n" --links wan --peers 10; done
