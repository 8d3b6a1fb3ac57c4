#!/usr/bin/env bash
# Installs the Debian packages wsstep needs to build, run and test, and nothing when
# they are all there already (quiet and idempotent). Sourced or run by run.sh and test.sh.
set -euo pipefail

WSSTEP_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libssl-dev openssl libcurl4-openssl-dev libidn2-dev libsqlite3-dev libpugixml-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  openjdk-17-jdk-headless
  nginx-light wrk tinyproxy python3-grpcio python3-grpc-tools python3-spyne
  libxmlsec1-dev libxmlsec1-openssl xmlsec1 python3-xmlsec python3-zeep
  clang libclang-rt-14-dev
  prometheus-cpp-dev prometheus
  libgoogle-perftools-dev
  postgresql-15 libpq-dev
  golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-goprotobuf-dev
)

missing=()
for p in "${WSSTEP_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# keytool may come from a JDK outside Debian's packages; only insist on the package when absent.
if command -v keytool >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [ "$p" = openjdk-17-jdk-headless ] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "wsstep: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
