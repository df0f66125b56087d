#!/usr/bin/env bash
# Builds cnnlens and runs every test, in four stages:
#   release   build/ (Release): every ctest suite (Criterion `unit`, pytest `py`).
#   asan      build-asan/ (-O2 -g, ASan + UBSan): every suite again; the pytest suites
#             drive the ASan kernel, and tests/py/conftest.py fails a test if any
#             cnnlens process (kernels included) writes a sanitizer report.
#   valgrind  build-mem/ (Release, -g): Criterion suites under valgrind memcheck (their
#             workers too) and pytest suites with the kernel under valgrind
#             (tests/valgrind-kernel.sh), $(nproc) suites at a time; zero errors and no
#             definite leaks allowed.  Three sets (times on the 2-core dev machine):
#               default         the CI set, 6 min: VALGRIND_CI_UNIT (wire/HMAC,
#                               message JSON, server, lens lexer/parser/evaluator,
#                               pth/safetensors/npy/idx/png/jpeg readers, limits,
#                               fuzz regressions) and VALGRIND_CI_PY (the kernel
#                               through jupyter_client: kernel, wire, conformance,
#                               clients, lens kernel, limits, faults,
#                               pth/safetensors/npy files from PyTorch/NumPy)
#               --valgrind      every unit suite but VALGRIND_UNIT_SKIP, VALGRIND_PY_SET
#                               (over an hour under load)
#               --valgrind-all  every unit test and every pytest suite (hours)
#   fuzz      fuzz/run.sh: every libFuzzer target for a fixed budget (~3 min).
# Exits non-zero on any failure.
#
#   tests/run.sh                      release, asan, valgrind (CI set) and fuzz (CI)
#   tests/run.sh --valgrind           the same with the bigger valgrind set
#   tests/run.sh --valgrind-all       the same with everything under valgrind (hours)
#   tests/run.sh --only valgrind      one stage (repeatable: --only asan --only valgrind;
#                                     stages: release asan valgrind fuzz); add
#                                     --valgrind or --valgrind-all for a bigger set
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# The valgrind CI set (the default): the code that reads untrusted input and the
# kernel's message paths, ~10 min with 2 jobs on the 2-core dev machine.  Longest
# first (the pool starts them in this order).  Measured alone under valgrind (s):
# py faults 155, kernel 75, limits 57, io_weights 41, io_npy 23, lang_kernel 18,
# kernel_clients 17, kernel_wire 13, kernel_conformance 11; unit lang_eval 52,
# io_pth 41, protocol 37, lang_lex 35, limits 32, image 30, lang_interp 26,
# data_idx 25, server 21, io_safetensors 20, io_npy 17, base64 9, server_history 7,
# fuzz_regress 6.  Left to --valgrind: the numeric suites (conv, ops, net, train,
# vis, zoo, progress, render, lang_engine 71 s without train_and_evaluate), the
# pytest suites of images compared with OpenCV (image_io 73 s), the CLI, cnnlens
# run, render, train_cli, the soak, and network: 44 s with the 50,000-message
# flood, 472 s (under load) since its 200 MB-frame and stuck-subscriber tests.
VALGRIND_CI_PY='faults kernel limits io_weights'
VALGRIND_CI_UNIT='lang_eval io_pth protocol lang_lex limits image lang_interp data_idx server io_safetensors io_npy base64 server_history fuzz_regress'
VALGRIND_CI_PY_SHORT='io_npy lang_kernel kernel_clients kernel_wire kernel_conformance'
# The pytest suites of --valgrind: all but the PyTorch-parity, visualisation,
# training-parity, lecture-notebook, browser and live-display suites, each of which
# takes 10-60 min under valgrind.
# Unit tests left out of the default and --valgrind runs (Criterion patterns): each
# takes 2-20 minutes there (training to an accuracy, convolutions split over memory
# budgets).  The parser-limit tests (100 kB inputs), once skipped, take 6 s now.
VALGRIND_UNIT_SKIP='engine/train_and_evaluate|train/one_epoch_on_2000_images_reaches_70_percent|train/an_interrupted_run_keeps_a_usable_model|conv_winograd/budget_spans_chunks|builtin/reaches_90_percent_on_the_test_set'
VALGRIND_PY_SET='^py_test_(cli|image_io|io_npy|io_weights|kernel|kernel_clients|kernel_conformance|kernel_wire|lang_kernel|limits|render|run|train_cli|soak|faults|network)$'

valgrind_all=0
with_valgrind=0
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --valgrind) with_valgrind=1 ;;
    --valgrind-all) valgrind_all=1 with_valgrind=1 ;;
    --only) only+=("$2"); shift ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "tests/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
wanted() {
  [ ${#only[@]} -eq 0 ] && return 0
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
# --trace-children=yes covers them.  Logs go to $2/<suite>/; VALGRIND_SKIP: the
# Criterion pattern of tests to leave out.
valgrind_unit() {
  local exe=$1 logs=$2/$(basename "$1") t0 filter=()
  [ -n "${VALGRIND_SKIP:-}" ] && filter=(--filter "!($VALGRIND_SKIP)")
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

# One pytest suite (py_test_$1) with every cnnlens process it starts under
# valgrind; conftest.py checks the logs (in $2/py_test_$1/memcheck-*/) as it goes.
valgrind_py() {
  local name=py_test_$1 logs=$2/py_test_$1 t0
  rm -rf "$logs" && mkdir -p "$logs"
  t0=$(date +%s)
  if ! CNNLENS_TEST_BIN="$PWD/tests/valgrind-kernel.sh" CNNLENS_MEMCHECK_ROOT="$PWD/$logs" \
      CNNLENS_SOAK_N="${CNNLENS_SOAK_N:-200}" ctest --test-dir build-mem --output-on-failure \
      --no-tests=error -R "^$name\$" >"$logs/output.txt" 2>&1; then
    echo "---- $name failed under valgrind:"; cat "$logs/output.txt"
    check_valgrind_logs "$logs" || true
    return 1
  fi
  check_valgrind_logs "$logs" >"$logs/summary.txt" || { cat "$logs/summary.txt"; return 1; }
  echo "   $name: passed, $(($(date +%s) - t0))s, $(tail -1 "$logs/summary.txt" | sed 's/^ *//')"
}

# One job of the valgrind pool: unit:<suite> or py:<suite>.
valgrind_job() {
  case "$1" in
    unit:*) valgrind_unit "build-mem/tests/${1#unit:}" build-mem/memcheck/unit ;;
    py:*) valgrind_py "${1#py:}" build-mem/memcheck/py ;;
  esac
}
export -f valgrind_unit valgrind_py valgrind_job check_valgrind_logs

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
  units=$(ctest --test-dir build-mem -N -L unit | sed -n 's/.*Test *#[0-9]*: unit_//p')
  pys=$(ctest --test-dir build-mem -N -L py | sed -n 's/.*Test *#[0-9]*: py_test_//p')
  if [ $valgrind_all = 1 ]; then
    set_name=--valgrind-all VALGRIND_SKIP=''
    pool=$(printf 'py:%s\n' $pys; printf 'unit:%s\n' $units)
  elif [ $with_valgrind = 1 ]; then
    set_name=--valgrind VALGRIND_SKIP=$VALGRIND_UNIT_SKIP
    pool=$(printf 'py:%s\n' $pys | grep -E "^py:$(echo "$VALGRIND_PY_SET" | sed 's/^^py_test_//')"
      printf 'unit:%s\n' $units)
  else
    set_name="CI set" VALGRIND_SKIP=$VALGRIND_UNIT_SKIP
    pool=$(printf 'py:%s\n' $VALGRIND_CI_PY; printf 'unit:test_%s\n' $VALGRIND_CI_UNIT
      printf 'py:%s\n' $VALGRIND_CI_PY_SHORT)
  fi
  export VALGRIND_SKIP
  begin "valgrind memcheck ($set_name, $(echo "$pool" | wc -l) suites, $jobs at a time); logs in build-mem/memcheck/"
  rm -rf build-mem/memcheck/unit build-mem/memcheck/py
  mkdir -p build-mem/memcheck/unit build-mem/memcheck/py
  echo "$pool" | xargs -P"$jobs" -I{} bash -c 'valgrind_job "$1"' _ {}
  check_valgrind_logs build-mem/memcheck
  end "valgrind ($set_name)"
fi
if wanted fuzz; then
  begin "fuzz (budget)"
  bash fuzz/run.sh
  end "fuzz"
fi
