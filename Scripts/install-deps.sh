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

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing missing system packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "error: need root (or sudo) to install ${need[*]} with apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
