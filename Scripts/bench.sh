#!/usr/bin/env bash
# Runs the package-benchmark suites in Benchmarks/ (a separate package, so CI's build does not
# compile the benchmark framework) and prints their figures.
# Usage: Scripts/bench.sh [extra `swift package benchmark` arguments, e.g. --filter Apply]
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/install-deps.sh
cd Benchmarks
swift package --allow-writing-to-package-directory benchmark --no-progress "$@"
