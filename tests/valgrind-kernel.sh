#!/usr/bin/env bash
# Runs cnnlens under valgrind's memcheck, with the same arguments.  Point the
# pytest suites at it (CNNLENS_TEST_BIN=tests/valgrind-kernel.sh): tests/py/conftest.py
# then also points the kernelspec at it, so kernels that jupyter_client starts run
# under valgrind too, and it checks every log when each test and the session end.
#
#   CNNLENS_VALGRIND_TARGET  the binary to run (default: $CNNLENS_BUILD/cnnlens,
#                            else build-mem/cnnlens, a release build with -g)
#   CNNLENS_MEMCHECK_DIR     where the logs go, one per process: vg.<pid>.log
#
# --trace-children=yes: `cnnlens grade` re-executes cnnlens for each notebook.
# --fair-sched=yes: valgrind runs one thread at a time; without it a computing
# thread can starve the control and heartbeat threads (interrupts never arrive).
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
target=${CNNLENS_VALGRIND_TARGET:-${CNNLENS_BUILD:-$here/../build-mem}/cnnlens}
logdir=${CNNLENS_MEMCHECK_DIR:-${TMPDIR:-/tmp}}
# --vex-iropt-register-updates=allregs-at-mem-access: precise registers at a
# faulting access, so a SIGBUS handler that fixes the fault can resume (the
# weight readers survive a file truncated under them: engine/io/filemap.c).
exec valgrind --tool=memcheck --vex-iropt-register-updates=allregs-at-mem-access \
  --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no \
  --trace-children=yes --fair-sched=yes --num-callers=30 --suppressions="$here/valgrind.supp" \
  --log-file="$logdir/vg.%p.log" "$target" "$@"
