"""What the tests share besides fixtures: tiny configs, the suite's XLA
level and device counts for subprocesses, in-process CLI calls, kills, and
how close two programs' numbers must be. Test files import it
(`from helpers import tiny_config`); tests/ is on sys.path as pytest puts
it there for tests/conftest.py (rootdir-relative, no __init__.py), also in
pytest-xdist workers.

Importing it imports no jax: conftest reads TEST_XLA_FLAGS from here before
it sets the environment jax reads at its import.
"""
import contextlib
import io
import json
import os
import pathlib
import signal
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

# XLA:CPU's LLVM optimisation is most of each of the suite's hundreds of
# compiles (a tiny grouped train step: 4.8 s at the default level, 2.7 s at
# 0); the suite's numbers stay those of one program run again, and
# runtime_test checks that users' default-level programs give the same
# numbers within ACROSS_PROGRAMS. Every subprocess inherits it (`with_devices`).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"

# Two compiled programs of the same math (compacted vs full vmap, n updates per
# call vs one, skipping frozen variants vs masking them) may differ in the last
# bits: XLA:CPU picks kernels and reduction orders per program and per CPU
# (bit-identical on AVX-512 machines; 1.15e-7 relative, 1 ULP, on an AMD EPYC
# without AVX-512). Tests allow this much across programs (about 8 float32
# ULPs); the same program run again (a resume) must match bit for bit.
ACROSS_PROGRAMS = 1e-6


def assert_rows_close(a: list[dict], b: list[dict], rtol: float = ACROSS_PROGRAMS) -> None:
  """Metrics rows of two programs: the same rows, keys and steps; numbers
  within `rtol` relative (NaN where the other is NaN)."""
  import numpy as np
  assert [sorted(r) for r in a] == [sorted(r) for r in b]
  for x, y in zip(a, b):
    assert x["step"] == y["step"]
    for key in x:
      np.testing.assert_allclose(x[key], y[key], rtol=rtol, atol=0, err_msg=f"{key} at {x['step']}")


def at_users_level() -> dict:
  """The environment of a subprocess compiled at XLA's default level, as a
  user's: for tests whose time goes to steps of a real-sized model, which
  level 0 runs slower."""
  flags = os.environ.get("XLA_FLAGS", "").replace(TEST_XLA_FLAGS, "")
  return {**os.environ, "XLA_FLAGS": " ".join(flags.split())}


def with_devices(n: int, env: dict | None = None) -> dict:
  """The environment of a subprocess that sees `n` XLA:CPU devices, with the
  suite's other XLA flags kept."""
  env = {**os.environ, **(env or {})}
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
  return env


def tiny_config(**overrides):
  """A config small enough for a 2-core CPU test: 1 layer, d 32, seq 32."""
  from warmup_research import config as config_lib  # imports jax: after conftest's environment
  c = config_lib.default_config()
  c.model.d_model, c.model.num_layers, c.model.num_heads = 32, 1, 2
  c.data.seq_len, c.data.batch_size = 32, 4
  c.data.name = "synthetic"
  c.model.vocab_size = 256
  c.train.total_steps, c.train.eval_every, c.train.eval_batches = 20, 10, 1
  c.train.log_every, c.train.checkpoint_every = 1, 5
  c.schedule.warmup_steps = 5
  for k, v in overrides.items():
    config_lib.set_field(c, k, v)
  config_lib.validate(c)
  return c


def run_cli(*args):
  """`cli.main(ARGS)` in this process, as a CompletedProcess (returncode,
  stdout, stderr): tests that make many CLI calls share the session's
  imports and compiles instead of paying them per process. Tests of the
  process itself (signals, several processes, device counts) start one."""

  from warmup_research import cli, workdir
  held = set(workdir._held_locks)
  out, err, code = io.StringIO(), io.StringIO(), 0
  with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      cli.main([str(a) for a in args])
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
    finally:   # the workdir locks it took end with the command, as with its process
      for key in set(workdir._held_locks) - held:
        workdir._held_locks.pop(key).close()
  return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def kill_after_checkpoint(proc, checkpoint_dir, step, timeout=300):
  """SIGKILLs `proc` once `checkpoint_dir` holds a finished step >= `step`."""
  checkpoint_dir = pathlib.Path(checkpoint_dir)
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    done = ([int(p.name) for p in checkpoint_dir.glob("*") if p.name.isdigit()]
            if checkpoint_dir.exists() else [])
    if any(s >= step for s in done):
      break
    time.sleep(0.02)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()


def train_summary(wd) -> dict:
  """The fields a `train` run's summary.json held before a run was a sweep of
  one point: its group record (timings, device, code) with the run's
  summary (`results.summaries`: status, outcome, losses, steps)."""

  from warmup_research import results, workdir  # they import jax; this module must not
  record = json.loads(workdir.Layout.of(wd).group_record("g000").read_text())
  return {**record, **results.summaries(results.load(wd))["run"]}
