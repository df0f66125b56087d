#!/usr/bin/env bash
# Builds cnnlens and runs every test: the Criterion unit suites and the pytest
# suites (through ctest) on the release build, then the unit suites again under
# AddressSanitizer + UndefinedBehaviorSanitizer.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== tests (release)"
ctest --test-dir build --output-on-failure -j1

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCNNLENS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j1 -L "${CNNLENS_ASAN_LABELS:-unit|asan}"
echo "== fuzz (budget)"; bash fuzz/run.sh
