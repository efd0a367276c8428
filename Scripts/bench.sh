#!/usr/bin/env bash
# Runs the package-benchmark suites in Benchmarks/ (a separate package, so CI's build does not
# compile the benchmark framework) and prints their figures.
# Usage: Scripts/bench.sh [extra `swift package benchmark` arguments, e.g. --filter Apply]
#        Scripts/bench.sh --phases   (runs the runtime benchmark's blocks once each and prints
#                                     the median time of execute / commit / batch / write)
#        Scripts/bench.sh --growth   (one validator's event workload on a state stored in RocksDB,
#                                     in process: cost per event as history grows; see
#                                     Benchmarks/Sources/StateGrowth; KC_GROWTH_EVENTS etc.)
#        Scripts/bench.sh --turns    (the signature stage: a peer's transaction behind another
#                                     peer's 10,000, whole batches against turns; ADR 0024)
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/install-deps.sh
cd Benchmarks
if [ "${1:-}" = "--phases" ]; then
    swift build -c release --product BlockPhases
    exec "$(swift build -c release --show-bin-path)/BlockPhases"
fi
if [ "${1:-}" = "--turns" ]; then
    swift build -c release --product StageTurns
    exec "$(swift build -c release --show-bin-path)/StageTurns"
fi
if [ "${1:-}" = "--growth" ]; then
    swift build -c release --product StateGrowth
    exec "$(swift build -c release --show-bin-path)/StateGrowth"
fi
swift package --allow-writing-to-package-directory benchmark --no-progress "$@"
