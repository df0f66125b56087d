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
  clang libclang-rt-dev
  chromium
)

want=("${build_pkgs[@]}")
with_tests=1
if [ "${1:-}" = "--no-test" ]; then with_tests=0; fi
if [ "$with_tests" = 1 ]; then
  want+=("${test_pkgs[@]}")
  # The browser test drives Chromium with playwright-core from npm. A machine
  # whose Node.js came from elsewhere (with its own npm) keeps it: Debian's npm
  # package would conflict with it.
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
# playwright-core at the version tests/browser/package-lock.json pins. It never
# downloads a browser: tests/browser/notebooks.js launches Debian's /usr/bin/chromium.
browser_deps() {
  local dir="$root/tests/browser" want have
  want=$(node -p "require('$dir/package-lock.json').packages['node_modules/playwright-core'].version")
  have=$(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "install/deps.sh: playwright-core $have already in tests/browser/node_modules"
    return 0
  fi
  echo "install/deps.sh: npm ci in tests/browser (playwright-core $want)"
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund; then
    echo "install/deps.sh: npm ci failed in tests/browser (no access to the npm registry?)" >&2
    exit 1
  fi
}

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
  if [ "$with_tests" = 1 ]; then browser_deps; fi
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
if [ "$with_tests" = 1 ]; then browser_deps; fi
echo "install/deps.sh: done"
