#!/usr/bin/env bash
# Installs the Debian packages the node links against, if they are missing.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
pkg-config --version >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists rocksdb 2>/dev/null || need+=(librocksdb-dev)
pkg-config --exists libsodium 2>/dev/null || need+=(libsodium-dev)
# FoundationNetworking (the CLI's and the attester's HTTP client) loads libcurl at run time.
ldconfig -p 2>/dev/null | grep -q 'libcurl\.so\.4' || need+=(libcurl4)

if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  sudo_cmd=(false)
fi
export DEBIAN_FRONTEND=noninteractive

if [ ${#need[@]} -gt 0 ]; then
  echo "Installing missing system packages: ${need[*]}"
  if [ "${sudo_cmd[*]}" = false ]; then
    echo "error: need root (or sudo) to install ${need[*]} with apt-get" >&2
    exit 1
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# promtool (from Debian's prometheus package) checks the node's /metrics in the tests. Only
# that binary is taken out of the package, into .build/tools: no Prometheus service is
# installed or started on the machine.
tools="$(cd "$(dirname "$0")/.." && pwd)/.build/tools"
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$tools/promtool" ]; then
  echo "Fetching promtool from Debian's prometheus package into .build/tools"
  work=$(mktemp -d)
  (
    cd "$work"
    apt-get download prometheus >/dev/null 2>&1 || { "${sudo_cmd[@]}" apt-get update -qq && apt-get download prometheus >/dev/null; }
    dpkg-deb -x prometheus_*.deb extracted
  )
  mkdir -p "$tools"
  cp "$work/extracted/usr/bin/promtool" "$tools/promtool"
  rm -rf "$work"
fi
