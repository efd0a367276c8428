#!/usr/bin/env bash
# Runs every test: installs missing system packages, builds, then runs the whole suite.
# Usage: Scripts/test.sh [extra `swift test` arguments, e.g. --filter Genesis]
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh

# The CLI and crash tests run the built `node` binary, so build it before the tests.
swift build
if [ $# -gt 0 ]; then
  exec swift test "$@"
fi
# Two passes over one build. The in-process RPC tests run alone: the multi-process tests
# block threads of Swift's shared pool while they wait for child processes, and parts of
# the HTTP/WebSocket stack schedule work on that pool.
swift build --build-tests
swift test --skip-build --skip KCRPCTests
swift test --skip-build --filter KCRPCTests
