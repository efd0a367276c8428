#!/usr/bin/env bash
# Runs every test: installs missing system packages, builds, then runs the whole suite.
# Usage: Scripts/test.sh [extra `swift test` arguments, e.g. --filter Genesis]
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh

# The CLI and crash tests run the built `node` binary, so build it before the tests.
swift build
swift test "$@"
