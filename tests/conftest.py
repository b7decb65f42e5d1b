"""Fixtures and hooks; the helpers the tests share are in helpers.py.

Environment for every test (and the subprocesses they start): JAX on CPU, and
data / compilation-cache dirs under a temporary directory, never the user's.
"""
import gc
import os
import pathlib
import shutil
import sysconfig
import tempfile

from helpers import TEST_XLA_FLAGS, tiny_config

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
# The suite compiles at XLA's level 0 (helpers.TEST_XLA_FLAGS says why).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import pytest  # noqa: E402


def pytest_sessionfinish(session):
  shutil.rmtree(_TMP, ignore_errors=True)
  if "PYTEST_XDIST_WORKER" not in os.environ:   # the run's first process: after its workers
    shutil.rmtree(_SHARED, ignore_errors=True)


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


@pytest.fixture
def tiny_cfg():
  return tiny_config
