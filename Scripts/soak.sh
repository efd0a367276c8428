#!/usr/bin/env bash
# Runs N simulator seeds (release build) and prints how many passed.
# Usage: Scripts/soak.sh N [first seed, default 1] [extra `node simulate` options]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:?usage: Scripts/soak.sh N [first-seed] [options]}
first=${2:-1}
shift $(( $# >= 2 ? 2 : 1 ))
Scripts/install-deps.sh
swift build -c release --product node | tail -1
last=$((first + count - 1))
exec .build/release/node simulate --seeds "${first}..${last}" "$@"
