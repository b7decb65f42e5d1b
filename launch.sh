#!/usr/bin/env bash
# warmup-research launcher. Creates .venv from requirements.txt when it is
# missing or stale (requirements.txt changed), then runs what it is asked:
#
#   ./launch.sh                       the main job: the quickstart run
#   ./launch.sh test [pytest args]    the test suite
#   ./launch.sh CMD [args]            python -m warmup_research CMD [args]
#                                     (train, schedules)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[launch] setting up .venv from requirements.txt (once; about a minute)" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
PY=.venv/bin/python

case "${1:-}" in
  "")
    exec "$PY" -m warmup_research train --config experiments/quickstart.py \
      --workdir workdirs/quickstart
    ;;
  test)
    shift
    exec "$PY" -m pytest -q tests "$@"
    ;;
  *)
    exec "$PY" -m warmup_research "$@"
    ;;
esac
