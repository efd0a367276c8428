#!/usr/bin/env bash
# For machines whose Docker engine cannot pull from a registry: builds local stand-ins for the
# two base images the Dockerfile names, so `docker build` and Docker/smoke.sh run offline.
#   debian:bookworm-slim  <- debootstrap (minbase) from the machine's Debian mirror
#   swift:6.3-bookworm    <- that image + the Swift toolchain installed on this machine
#                            ($SWIFT_TOOLCHAIN, default /opt/swift) and the build packages the
#                            official image carries; with $PACKAGE_MIRROR (a folder of git
#                            mirrors laid out as github.com/<owner>/<repo>), git fetches the
#                            Swift packages from it instead of GitHub.
# Needs root, debootstrap and a running Docker engine. Where the registry is reachable, skip
# this: the real images are pulled by `docker build`.
set -euo pipefail
toolchain=${SWIFT_TOOLCHAIN:-/opt/swift}
mirror=${PACKAGE_MIRROR:-}
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -x "$toolchain/usr/bin/swift" ] || { echo "no Swift toolchain at $toolchain (set SWIFT_TOOLCHAIN)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"; docker rm -f membria-swift-base >/dev/null 2>&1 || true' EXIT

debootstrap --variant=minbase bookworm "$work/rootfs" "$debian_mirror" >/dev/null
tar -C "$work/rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
echo "built debian:bookworm-slim"

mounts=(-v "$toolchain:/host-toolchain:ro")
[ -n "$mirror" ] && mounts+=(-v "$mirror:/host-mirror:ro")
docker run --name membria-swift-base "${mounts[@]}" debian:bookworm-slim bash -c '
set -e
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils git gnupg2 libc6-dev \
  libcurl4-openssl-dev libedit2 libgcc-12-dev libpython3-dev libsqlite3-0 libstdc++-12-dev libxml2-dev \
  libz3-dev pkg-config tzdata zlib1g-dev libncurses6 libncurses-dev ca-certificates >/dev/null
cp -a /host-toolchain /opt/swift
if [ -d /host-mirror ]; then
  cp -a /host-mirror /opt/swift-packages
  git config --system url./opt/swift-packages/.insteadof https://github.com/
fi
rm -rf /var/lib/apt/lists/*
/opt/swift/usr/bin/swift --version' >/dev/null
docker commit --change 'ENV PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  membria-swift-base swift:6.3-bookworm >/dev/null
echo "built swift:6.3-bookworm"
