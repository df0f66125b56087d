#!/usr/bin/env bash
# Installs every Debian package that cnnlens needs to build, test and run its
# notebooks. Idempotent: packages already present are skipped by apt-get.
# Usage: install/deps.sh [--no-test]   (--no-test skips the PyTorch/Jupyter test stack)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config git
  libzmq3-dev libjansson-dev libssl-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev
  libopenblas-dev libcriterion-dev
  dataset-fashion-mnist
)
test_pkgs=(
  python3 python3-pytest python3-numpy
  python3-jupyter-client jupyter-client python3-nbclient python3-nbformat
  jupyter-nbconvert jupyter-notebook python3-jupyter-kernel-test jupyter-console
  python3-torch python3-torchvision python3-opencv python3-psutil python3-ipykernel
  valgrind
)

want=("${build_pkgs[@]}")
if [ "${1:-}" != "--no-test" ]; then want+=("${test_pkgs[@]}"); fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install/deps.sh: must run as root (or with sudo available) to apt-get install" >&2
    exit 1
  fi
else SUDO=""; fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install/deps.sh: all ${#want[@]} packages already installed"
  exit 0
fi

echo "install/deps.sh: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "install/deps.sh: apt-get update failed (no access to Debian's package mirror?)" >&2; exit 1; }
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "install/deps.sh: package '$p' cannot be found in the configured Debian repositories" >&2
    exit 1
  fi
done
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "install/deps.sh: apt-get install failed for: ${missing[*]}" >&2
  exit 1
fi
echo "install/deps.sh: done"
