"""Shared fixtures: tiny configs and a small real-text corpus.

Environment for every test (and the subprocesses they start): JAX on CPU, and
data / compilation-cache dirs under a temporary directory, never the user's.
"""
import gc
import os
import pathlib
import shutil
import sysconfig
import tempfile

_TMP = pathlib.Path(tempfile.mkdtemp(prefix="wr-tests-"))
# The workers of one run (`launch.sh test` runs pytest-xdist) share one
# compilation cache, made by the process that starts them (they inherit the
# variable), so a program one compiled the others load; data dirs stay each
# worker's own (two TFDS builds of one dataset would race).
if "WR_TESTS_SHARED_DIR" not in os.environ:
  os.environ["WR_TESTS_SHARED_DIR"] = tempfile.mkdtemp(prefix="wr-tests-shared-")
_SHARED = pathlib.Path(os.environ["WR_TESTS_SHARED_DIR"])
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WARMUP_RESEARCH_DATA_DIR"] = str(_TMP / "tfds")
os.environ["WARMUP_RESEARCH_JAX_CACHE"] = str(_SHARED / "jax_cache")
# XLA:CPU's LLVM optimisation is most of each of the suite's hundreds of
# compiles (a tiny grouped train step: 4.8 s at the default level, 2.7 s at
# 0); the suite's numbers stay those of one program run again, and
# runtime_test checks that users' default-level programs give the same
# numbers within ACROSS_PROGRAMS. Every subprocess inherits it (`with_devices`).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import pytest  # noqa: E402


def pytest_sessionfinish(session):
  shutil.rmtree(_TMP, ignore_errors=True)
  if "PYTEST_XDIST_WORKER" not in os.environ:   # the run's first process: after its workers
    shutil.rmtree(_SHARED, ignore_errors=True)


REPO = pathlib.Path(__file__).resolve().parents[1]

from warmup_research import config as config_lib  # noqa: E402
from warmup_research import runtime  # noqa: E402

gc.set_threshold(*runtime.GC_THRESHOLDS)  # as the CLI runs
# In-process tests share the session's persistent compilation cache, as the
# CLI subprocesses they start do: many tests build the same tiny programs
# again, and XLA:CPU takes 10-20 s to compile one (the numbers are the same).
runtime.enable_compilation_cache(os.environ["WARMUP_RESEARCH_JAX_CACHE"])


@pytest.fixture(scope="session")
def corpus_dir():
  """A small corpus of real text: two packages of Python's standard library."""
  out = _TMP / "corpus"
  if not out.exists():
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for pkg in ("json", "email", "logging", "http"):
      shutil.copytree(stdlib / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__"))
  return out


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
  import contextlib
  import io
  import subprocess

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
  import signal
  import time
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


@pytest.fixture
def tiny_cfg():
  return tiny_config
