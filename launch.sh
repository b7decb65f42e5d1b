#!/usr/bin/env bash
# warmup-research launcher. Creates .venv from requirements.txt (the exact
# lock) and installs this package into it (`pip install -e . --no-deps`) when
# it is missing or stale, then runs what it is asked:
#
#   ./launch.sh                          the main job: the quickstart grid into
#                                        workdirs/quickstart, then how it compares
#                                        with the committed results/quickstart
#   ./launch.sh test [pytest args]       ruff, then the test suite on pytest-xdist
#                                        workers (-m "not slow": quick)
#   ./launch.sh experiments/NAME.py [..] warmup-research sweep experiments/NAME.py [..]
#   ./launch.sh CMD [args]               warmup-research CMD [args]
#                                        (sweep, train, report, analyze, schedules)
#   ./launch.sh --procs N ...            the same, as N local processes joined by
#                                        jax.distributed (coordinator on 127.0.0.1)
#
# WR_PYTHON=/path/to/python uses that interpreter (an environment you manage,
# e.g. one with a CUDA build of JAX) instead of .venv, and installs nothing.
#
# Under SLURM (inside an allocation, SLURM_NTASKS > 1 and no SLURM_STEP_ID),
# a sweep/train command is started with `srun` on every task; JAX detects the
# cluster itself.
set -euo pipefail
cd "$(dirname "$0")"

if [ -n "${WR_PYTHON:-}" ]; then
  if ! "$WR_PYTHON" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
    echo "error: WR_PYTHON: must be a Python 3.10+ interpreter, got '${WR_PYTHON}'" >&2
    exit 2
  fi
  PY=$WR_PYTHON
else
  PYTHON=${PYTHON:-python3}
  stamp=.venv/.requirements.sha256
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[launch] setting up .venv from requirements.txt (once; about a minute)" >&2
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    # the lock holds setuptools, so the editable install builds offline
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
  fi
  PY=$PWD/.venv/bin/python
fi

procs=1
if [ "${1:-}" = "--procs" ]; then
  procs=${2:-}
  if ! [[ "$procs" =~ ^[0-9]+$ ]] || [ "$procs" -lt 1 ]; then
    echo "error: --procs: must be an integer >= 1, got '${procs}'" >&2
    exit 2
  fi
  shift 2
fi

case "${1:-}" in
  "")   # the committed table is re-made only when asked: ./launch.sh experiments/quickstart.py
    "$PY" -m warmup_research sweep experiments/quickstart.py --workdir workdirs/quickstart
    exec "$PY" -m warmup_research report workdirs/quickstart --against results/quickstart ;;
  test) shift; "$PY" -m ruff check .
    # pytest-xdist workers, one per core up to 4 (each holds its own JAX, about
    # 2 GB at its peak); files stay whole on one worker (their module fixtures
    # are made once). WR_TEST_WORKERS=0 runs in this process.
    cores=$(nproc 2>/dev/null || echo 2)
    workers=${WR_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
    exec "$PY" -m pytest -q -n "$workers" --dist loadfile "$@" ;;
  *.py|*.py:*) set -- sweep "$@" ;;
esac

if [ "$procs" -gt 1 ]; then
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pids=()
  for ((i = 0; i < procs; i++)); do
    WR_COORDINATOR=127.0.0.1:$port WR_NUM_PROCESSES=$procs WR_PROCESS_ID=$i \
      "$PY" -m warmup_research "$@" &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  exit $status
fi
if [ "${SLURM_NTASKS:-1}" -gt 1 ] && [ -z "${SLURM_STEP_ID:-}" ] && command -v srun >/dev/null; then
  exec srun "$PY" -m warmup_research "$@"
fi
exec "$PY" -m warmup_research "$@"
