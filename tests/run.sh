#!/usr/bin/env bash
# Builds cnnlens and runs every test, in four stages:
#   release   build/ (Release): every ctest suite (Criterion `unit`, pytest `py`).
#   asan      build-asan/ (-O2 -g, ASan + UBSan): every suite again; the pytest suites
#             drive the ASan kernel, and tests/py/conftest.py fails a test if any
#             cnnlens process (kernels included) writes a sanitizer report.
#   valgrind  build-mem/ (Release, -g): Criterion suites under valgrind memcheck (their
#             workers too) and pytest suites with the kernel under valgrind
#             (tests/valgrind-kernel.sh), $(nproc) suites at a time: every suite,
#             zero errors and no definite leaks allowed.  Suites that would take
#             hours under memcheck do less work there, with the same checks
#             (smaller inputs, lecture notebooks as rehearsals); 41-60 min
#             on the 2-core dev machine.
#   fuzz      fuzz/run.sh: every libFuzzer target for a fixed budget (~3 min).
# Exits non-zero on any failure.
#
#   tests/run.sh                      release, asan, valgrind and fuzz (CI)
#   tests/run.sh --only valgrind      one stage (repeatable: --only asan --only valgrind;
#                                     stages: release asan valgrind fuzz)
#   (--valgrind and --valgrind-all, the former bigger sets, are accepted: every
#   suite now runs under valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# The valgrind stage runs every suite; the pool starts them in VALGRIND_FIRST
# order (the longest first), then the rest, so that the queues end together.
# Measured alone under valgrind on the 2-core machine (s): unit train 1580
# (the two training tests 695 and 503 of it), lang_engine 200, vis 89, lang_eval
# 52, ops 43, io_pth 41, protocol 37, lang_lex 35, limits 32, image 30, zoo 29,
# others under 30; py vis 1072, notebooks 702, parity 598, network 472 (under
# load: its 200 MB frames and stuck IOPub subscriber), vis_optim 417, parity_vgg
# 297, train_parity 276, faults 155, live_display 120, run_lecture 94, kernel 75,
# image_io 73, limits 57, browser 51, io_weights 41, the rest under 30.  Unit
# tests and pytest suites that would take too long under memcheck do less work
# there (CNNLENS_UNDER_VALGRIND: 64x64 images, 1000 test images, fewer units,
# the lecture CNN instead of ResNet18 for the live occlusion map), with the same
# checks; the suites that run whole lectures run them as a rehearsal
# (CNNLENS_REHEARSE=3, conftest.py).
VALGRIND_FIRST='unit:test_train py:vis py:notebooks py:parity py:network py:vis_optim py:parity_vgg py:train_parity unit:test_lang_engine py:faults unit:test_vis unit:test_train_builtin py:kernel py:image_io py:limits unit:test_lang_eval'

only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --valgrind | --valgrind-all) ;; # former sets: every suite runs under valgrind now
    --only) only+=("$2"); shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
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
  # CNNLENS_UNDER_VALGRIND: tests that would take too long under memcheck do less work.
  if ! CNNLENS_UNDER_VALGRIND=1 valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
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

# tests/third_party/zmq_unflushed_frame leaks as libzmq 4.3.4 does in the
# kernel; run as the kernel is (tests/valgrind-kernel.sh, tests/valgrind.supp)
# it must be clean.  Says so when the leak is gone (a newer libzmq), as the
# suppression can then go.
check_zmq_suppression() {
  local logs=build-mem/memcheck/zmq_unflushed_frame
  rm -rf "$logs" && mkdir -p "$logs"
  if ! CNNLENS_VALGRIND_TARGET=build-mem/tests/zmq_unflushed_frame CNNLENS_MEMCHECK_DIR="$logs" \
      tests/valgrind-kernel.sh; then
    echo "---- tests/valgrind.supp no longer covers libzmq's leak of unflushed frames:"
    cat "$logs"/vg.*.log
    return 1
  fi
  if grep -q "suppressed: [1-9]" "$logs"/vg.*.log; then
    echo "   libzmq's leak of unflushed frames: reproduced, suppressed by tests/valgrind.supp"
  else
    echo "   note: libzmq no longer leaks unflushed frames; remove its entry from tests/valgrind.supp"
  fi
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
  # tests/lsan.supp: a libzmq leak (see tests/valgrind.supp); its reproducer must run clean.
  lsan="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  LSAN_OPTIONS=$lsan ASAN_OPTIONS=detect_leaks=1 build-asan/tests/zmq_unflushed_frame
  LSAN_OPTIONS=$lsan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CNNLENS_MEMCHECK_ROOT="$PWD/build-asan/memcheck" \
    CNNLENS_SOAK_N="${CNNLENS_SOAK_N:-2000}" \
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
  all=$(printf 'py:%s\n' $pys; printf 'unit:%s\n' $units)
  pool=$(printf '%s\n' $VALGRIND_FIRST | grep -xF "$all"; printf '%s\n' $all | grep -vxF "$(printf '%s\n' $VALGRIND_FIRST)")
  begin "valgrind memcheck ($(echo "$pool" | wc -l) suites, $jobs at a time); logs in build-mem/memcheck/"
  rm -rf build-mem/memcheck/unit build-mem/memcheck/py
  mkdir -p build-mem/memcheck/unit build-mem/memcheck/py
  check_zmq_suppression
  echo "$pool" | xargs -P"$jobs" -I{} bash -c 'valgrind_job "$1"' _ {}
  check_valgrind_logs build-mem/memcheck
  end "valgrind"
fi
if wanted fuzz; then
  begin "fuzz (budget)"
  bash fuzz/run.sh
  end "fuzz"
fi
