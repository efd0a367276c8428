#!/usr/bin/env bash
# Runs the adversarial property test of the knowledge-chain rules over N seeds (default
# 20,000; CI runs 2,000) and the deliberate-bug checks, and prints per-batch figures.
# Usage: Scripts/soak-rules.sh [N] [first seed, default 0]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
first=${2:-0}
Scripts/install-deps.sh
swift build --build-tests | tail -1
start=$(date +%s)
KC_RULE_SEEDS="$count" KC_RULE_SEED_BASE="$first" \
  swift test --skip-build --filter 'AdversarialPropertyTests' 2>&1 | grep -E '^rule seeds|^broken rule|✘|✔ Test|went unnoticed|broke a rule'
echo "$count seeds from $first in $(( $(date +%s) - start )) s"
