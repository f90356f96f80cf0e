#!/usr/bin/env bash
set -euo pipefail
# Installs the Debian packages kroute builds and tests with; a no-op when they are all present.

packages=(
  # build: meson + ninja, gcc for the release build, clang + its sanitizer and fuzzer runtimes for build-asan
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  # the module is built against Debian's nginx source tree and tested with its nginx
  nginx nginx-dev libpcre2-dev zlib1g-dev libssl-dev
  # the libraries meson.build files ask for
  libcurl4-openssl-dev libjsoncpp-dev libfmt-dev libxxhash-dev
  doctest-dev libcli11-dev libcpp-httplib-dev libbenchmark-dev libyaml-cpp-dev
  # commands the scripts, tests and benchmarks run (llvm-14: llvm-symbolizer for sanitizer reports;
  # ca-certificates: curl and go reach the Go module proxy over https; git: the revision benchmarks record;
  # nftables: a test pod that drops SYNs, for proxy-connect-timeout)
  curl ca-certificates openssl iproute2 procps mount e2fsprogs strace wrk git llvm-14 debootstrap nftables
  # /usr/bin/python3 and the modules the tests, demo and benchmark report import
  python3 python3-pytest python3-websocket python3-yaml python3-matplotlib
  # gRPC backends and the gRPC client of the backend-protocol e2e tests (generic handlers: no protoc)
  python3-grpcio
  # client certificates and CRLs the auth-tls e2e tests make
  python3-cryptography
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to install packages (run 'sudo make deps')" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# nginx must not start as a system service: tests and `make run` run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
