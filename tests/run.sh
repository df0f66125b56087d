#!/usr/bin/env bash
# Builds cnnlens and runs every test, in four stages:
#   release   build/ (Release): every ctest suite (Criterion `unit`, pytest `py`).
#   asan      build-asan/ (-O2 -g, ASan + UBSan): every suite again; the pytest suites
#             drive the ASan kernel, and tests/py/conftest.py fails a test if any
#             cnnlens process (kernels included) writes a sanitizer report.
#   valgrind  build-mem/ (Release, -g): every Criterion suite under valgrind memcheck
#             (its workers too; but VALGRIND_UNIT_SKIP), and the pytest suites of
#             VALGRIND_PY_SET with the kernel under valgrind (tests/valgrind-kernel.sh);
#             zero errors and no definite leaks allowed.  --valgrind-all runs every
#             unit test and every pytest suite there (hours).
#   fuzz      fuzz/run.sh: every libFuzzer target for a fixed budget (~3 min).
# Exits non-zero on any failure.
#
#   tests/run.sh                      release, asan and fuzz (CI)
#   tests/run.sh --valgrind           all four stages
#   tests/run.sh --valgrind-all       all four, every test under valgrind (hours)
#   tests/run.sh --only valgrind      one stage (repeatable: --only asan --only valgrind;
#                                     stages: release asan valgrind fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# The pytest suites that run under valgrind in CI: all but the PyTorch-parity,
# visualisation, training-parity, lecture-notebook, browser and live-display
# suites, each of which takes 10-60 min under valgrind.
# Unit tests left out of the CI valgrind run (Criterion patterns): each takes
# 2-20 minutes there (training to an accuracy, parser limits on 100 kB inputs,
# convolutions split over memory budgets).
VALGRIND_UNIT_SKIP='parse/deep_nesting_is_an_error_not_a_crash|parse/very_long_expressions_are_an_error_not_a_crash|engine/train_and_evaluate|train/one_epoch_on_2000_images_reaches_70_percent|train/an_interrupted_run_keeps_a_usable_model|conv_winograd/budget_spans_chunks|builtin/reaches_90_percent_on_the_test_set'
VALGRIND_PY_SET='^py_test_(cli|image_io|io_npy|io_weights|kernel|kernel_clients|kernel_conformance|kernel_wire|lang_kernel|limits|render|run|train_cli|soak|faults|network)$'

valgrind_all=0
with_valgrind=0
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --valgrind) with_valgrind=1 ;;
    --valgrind-all) valgrind_all=1 with_valgrind=1 ;;
    --only) only+=("$2"); shift ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "tests/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
wanted() {
  # valgrind is not among the default stages yet: it takes over an hour here.
  [ ${#only[@]} -eq 0 ] && { [ "$1" != valgrind ] || [ $with_valgrind = 1 ]; } && return 0
  [ ${#only[@]} -eq 0 ] && return 1
  local s
  for s in "${only[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

timings=()
stage_start=0
begin() { echo "== $1"; stage_start=$(date +%s); }
end() { timings+=("$1: $(( $(date +%s) - stage_start ))s"); }
print_timings() { local t; for t in "${timings[@]}"; do echo "   $t"; done; }
trap print_timings EXIT

# Valgrind's memcheck on every log in the folders given: prints each log that
# shows errors (definite leaks count as errors) and returns 1 if there is one.
check_valgrind_logs() {
  local bad=0 clean=0 killed=0 log
  for log in $(find "$@" -name 'vg.*.log' | sort); do
    if ! grep -q "ERROR SUMMARY:" "$log"; then
      killed=$((killed + 1))  # killed by a test on purpose (SIGKILL): no summary
    elif grep -q "ERROR SUMMARY: 0 errors" "$log"; then
      clean=$((clean + 1))
    else
      echo "---- valgrind found errors: $log"; cat "$log"; bad=$((bad + 1))
    fi
  done
  echo "   valgrind: $* : $clean process(es) with ERROR SUMMARY: 0 errors, $bad with errors, $killed killed before their summary"
  [ $bad = 0 ]
}

# One Criterion executable under valgrind; its forked workers re-execute it, so
# --trace-children=yes covers them.  Logs go to $2/<suite>/.
valgrind_unit() {
  local exe=$1 logs=$2/$(basename "$1") t0 filter=()
  [ -n "${VALGRIND_UNIT_SKIP:-}" ] && filter=(--filter "!($VALGRIND_UNIT_SKIP)")
  rm -rf "$logs" && mkdir -p "$logs"
  t0=$(date +%s)
  if ! valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no \
      --trace-children=yes --fair-sched=yes --num-callers=30 --suppressions=tests/valgrind.supp \
      --log-file="$logs/vg.%p.log" "$exe" --verbose=0 -j1 "${filter[@]}" >"$logs/output.txt" 2>&1; then
    echo "---- $(basename "$exe") failed under valgrind:"; cat "$logs/output.txt"
    check_valgrind_logs "$logs" || true
    return 1
  fi
  check_valgrind_logs "$logs" >"$logs/summary.txt" || { cat "$logs/summary.txt"; return 1; }
  echo "   $(basename "$exe"): passed, $(($(date +%s) - t0))s, $(tail -1 "$logs/summary.txt" | sed 's/^ *//')"
}
export -f valgrind_unit check_valgrind_logs

if wanted release; then
  begin "release build"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$jobs"
  end "release build"
  begin "tests (release)"
  ctest --test-dir build --output-on-failure -j1
  end "tests (release)"
fi

if wanted asan; then
  begin "sanitizer build (ASan + UBSan)"
  # -O2: a Debug (-O0) ASan kernel is 25x slower than release, an -O2 one 5x
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DCNNLENS_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  end "sanitizer build"
  begin "tests (ASan + UBSan): every suite; reports of kernels in build-asan/memcheck/"
  rm -rf build-asan/memcheck
  # conftest.py adds log_path for the pytest suites; a Criterion suite's report
  # goes to its output, and abort_on_error fails it.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CNNLENS_MEMCHECK_ROOT="$PWD/build-asan/memcheck" CNNLENS_SOAK_N="${CNNLENS_SOAK_N:-2000}" \
    ctest --test-dir build-asan --output-on-failure -j1
  end "tests (ASan + UBSan)"
fi

if wanted valgrind; then
  begin "valgrind build (Release, -g)"
  cmake -S . -B build-mem -DCMAKE_BUILD_TYPE=Release -DCNNLENS_TEST_TIMEOUT_SCALE=20 >/dev/null
  cmake --build build-mem -j"$jobs"
  end "valgrind build"
  [ $valgrind_all = 1 ] && VALGRIND_UNIT_SKIP=''
  export VALGRIND_UNIT_SKIP
  begin "unit suites under valgrind memcheck; logs in build-mem/memcheck/unit/"
  mkdir -p build-mem/memcheck/unit
  ctest --test-dir build-mem -N -L unit | sed -n 's/.*Test *#[0-9]*: unit_//p' |
    sed 's|^|build-mem/tests/|' |
    xargs -P"$jobs" -I{} bash -c 'valgrind_unit "$1" build-mem/memcheck/unit' _ {}
  end "unit suites under valgrind"
  py_set=$VALGRIND_PY_SET
  [ $valgrind_all = 1 ] && py_set='^py_'
  begin "pytest suites with the kernel under valgrind ($py_set); logs in build-mem/memcheck/py/"
  rm -rf build-mem/memcheck/py
  CNNLENS_TEST_BIN="$PWD/tests/valgrind-kernel.sh" CNNLENS_MEMCHECK_ROOT="$PWD/build-mem/memcheck/py" \
    CNNLENS_SOAK_N="${CNNLENS_SOAK_N:-200}" \
    ctest --test-dir build-mem --output-on-failure -j1 -R "$py_set"
  check_valgrind_logs build-mem/memcheck/py
  end "pytest suites under valgrind"
fi
if wanted fuzz; then
  begin "fuzz (budget)"
  bash fuzz/run.sh
  end "fuzz"
fi
