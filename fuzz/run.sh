#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz and
# runs each for a fixed time on a scratch copy of its seed corpus (the
# committed fuzz/corpus is never written).  Prints the executions per target
# and fails if any fuzzer finds a crash, a leak, a timeout or an out-of-memory.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#   The default budget (18 s x 10 targets) is about 3 minutes: the CI stage.
#   A long run is the same command with a bigger number, e.g.
#   fuzz/run.sh 3600 (an hour per target); fuzz/run.sh 300 lens runs one.
# Environment: CNNLENS_FUZZ_KEEP=1 keeps the grown corpora (printed path).
#   CNNLENS_FUZZ_MERGE=1 merges each target's grown corpus into fuzz/corpus/<target>
#   after a clean run (libFuzzer -merge=1: only inputs that add coverage), so a
#   long run's gains reach the CI budget's seeds; commit them if they are worth it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-18}
shift || true
build=${CNNLENS_FUZZ_BUILD:-build-fuzz}

echo "fuzz: building with clang into $build"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCNNLENS_FUZZ=ON >/dev/null
if ! cmake --build "$build" -j2 --target fuzzers >"$build/fuzz-build.log" 2>&1; then
  tail -30 "$build/fuzz-build.log" >&2
  echo "fuzz: build failed (log: $build/fuzz-build.log)" >&2
  exit 1
fi

if [ $# -gt 0 ]; then targets=("$@"); else
  targets=()
  for src in fuzz/fuzz_*.c; do n=$(basename "$src" .c); targets+=("${n#fuzz_}"); done
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cnnlens-fuzz.XXXXXX")
cleanup() { if [ "${CNNLENS_FUZZ_KEEP:-0}" != 1 ]; then rm -rf "$scratch"; fi; }
trap cleanup EXIT
artifacts="$root/$build/fuzz-artifacts"
mkdir -p "$artifacts"

# Leaks are findings; a single allocation above 1 GiB is one too (a limit
# that should have refused the input first).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The limits of every fuzzer run: the fuzzing, the merge and the timing of merged inputs.
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536)

# Adds to the committed seeds the inputs of a grown corpus that reach new
# coverage, except those that take over 100 ms: the CI budget replays every
# seed first (a few hundred lens cells that each wait for the 0.3 s watchdog
# would spend all of its 18 s there).
merge_corpus() {
  local t=$1 bin=$2 grown=$3 before after slow
  mkdir -p "fuzz/corpus/$t"
  find "fuzz/corpus/$t" -type f | sort >"$scratch/$t.before"
  if ! "$bin" -merge=1 "${limits[@]}" "fuzz/corpus/$t" "$grown" >"$scratch/$t.merge.log" 2>&1; then
    echo "  merge failed (log: $scratch/$t.merge.log)" >&2
    return 0
  fi
  find "fuzz/corpus/$t" -type f | sort | comm -13 "$scratch/$t.before" - >"$scratch/$t.new"
  slow=0
  if [ -s "$scratch/$t.new" ]; then
    xargs "$bin" "${limits[@]}" <"$scratch/$t.new" 2>&1 | sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p' |
      awk '$1 > 100 {print $2}' >"$scratch/$t.slow" || true
    slow=$(wc -l <"$scratch/$t.slow")
    xargs -r rm -f <"$scratch/$t.slow"
  fi
  before=$(wc -l <"$scratch/$t.before")
  after=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "  merged into fuzz/corpus/$t: $((after - before)) new inputs ($after in all; $slow slow ones left out)"
}

failed=()
printf '%-12s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no fuzzer named '$t' ($bin)" >&2; exit 2; }
  corpus="$scratch/$t"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t/." "$corpus/"; fi
  dict=()
  if [ -f "fuzz/dict/$t.dict" ]; then dict=("-dict=fuzz/dict/$t.dict"); fi
  mkdir -p "$artifacts/$t"
  log="$scratch/$t.log"
  rc=0
  "$bin" "$corpus" "${dict[@]}" -max_total_time="$secs" "${limits[@]}" -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" >"$log" 2>&1 || rc=$?
  runs=$(grep -oE '^Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}' || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | awk '{print $2}' || true)
  if [ "$rc" = 0 ] && [ -n "$runs" ]; then
    printf '%-12s %12s %10s  %s\n' "$t" "$runs" "${rate:-?}" ok
    if [ "${CNNLENS_FUZZ_MERGE:-0}" = 1 ]; then merge_corpus "$t" "$bin" "$corpus"; fi
  else
    printf '%-12s %12s %10s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "FAILED (exit $rc)"
    grep -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|Test unit written|ALARM|out-of-memory|DEADLYSIGNAL' "$log" | head -20 >&2 || true
    tail -40 "$log" > "$artifacts/$t/last.log"
    echo "  full log tail: $artifacts/$t/last.log" >&2
    failed+=("$t")
  fi
done

if [ "${CNNLENS_FUZZ_KEEP:-0}" = 1 ]; then echo "fuzz: grown corpora kept in $scratch"; fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: $build/fuzz/fuzz_<target> <artifact>)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} fuzzers ran ${secs}s each without a finding"
