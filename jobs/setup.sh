#!/usr/bin/env bash
# Installs baton's Debian packages (when missing) and builds it in ./build with CMake.
# Used by jobs/quickstart.sh and .ci/run; safe to run again (it only rebuilds what changed).
# Usage: jobs/setup.sh [more Debian packages to install, e.g. the ones only the tests need]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(cmake g++ make procps iproute2 openmpi-bin libopenmpi-dev libdnnl-dev ocl-icd-opencl-dev libboost-program-options-dev nlohmann-json3-dev
          zlib1g-dev libgtest-dev googletest libbenchmark-dev dataset-fashion-mnist "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$repo/build" -j "$(nproc)"
