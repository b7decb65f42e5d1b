"""The worked example runs end to end on a tiny sweep (so it cannot rot)."""
import os
import subprocess
import sys

import pytest
from helpers import REPO, tiny_config

from warmup_research import sweep, workdir
from warmup_research.sweep import axis, product


@pytest.mark.slow
def test_the_analysis_example_runs_on_a_tiny_sweep(tmp_path):
  variants = sweep.expand(tiny_config(**{"train.total_steps": 10, "train.eval_every": 5}),
                          product(axis("schedule.warmup_steps", [0, 5]),
                                  axis("optimizer.peak_lr", [1e-3, 1e-2])))
  wd = tmp_path / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, wd, progress=False)
  from warmup_research import results
  results.write(wd, plots=False, tensorboard=False)
  env = {**os.environ, "WR_WORKDIR": str(wd), "WR_OUT": str(tmp_path / "out")}
  r = subprocess.run([sys.executable, "examples/analysis.py"], cwd=REPO, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  assert "4 runs, swept: ['optimizer.peak_lr', 'schedule.warmup_steps']" in r.stdout
  assert "Run('warmup_steps=" in r.stdout and ", step=10, params=" in r.stdout
  assert "\nsharpness " in r.stdout and "preconditioned sharpness " in r.stdout  # adamw
  assert (tmp_path / "out" / "example_eval_curves.png").stat().st_size > 10_000
