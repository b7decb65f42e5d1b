"""Process set-up and the host description named in results; the suite's
XLA level against users' default."""
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, assert_rows_close

from warmup_research import runtime

TINY_FLAGS = ["--config.model.d_model=32", "--config.model.num_layers=1",
              "--config.model.num_heads=2", "--config.data.seq_len=32",
              "--config.data.batch_size=4", "--config.data.name=synthetic",
              "--config.optimizer.peak_lr=1e-2", "--config.schedule.warmup_steps=5",
              "--config.train.total_steps=20", "--config.train.eval_every=10",
              "--config.train.eval_batches=1", "--config.train.log_every=1"]


def test_cpu_model_names_the_isa_features_that_change_the_kernels(tmp_path):
  info = tmp_path / "cpuinfo"
  core = ("model name\t: Intel(R) Xeon(R) Processor\n"
          "flags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n\n")
  info.write_text(core.format(extra="amx_tile avx512_bf16") * 2)
  assert runtime.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor (AVX-512, AVX512-BF16, AMX)"
  info.write_text(core.format(extra="").replace("avx512f avx512bw ", ""))
  assert runtime.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor"
  assert runtime.cpu_model(str(tmp_path / "missing")) != ""   # platform.processor() or 'unknown'


def test_set_cpu_flags_adds_once_and_respects_the_user(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  runtime.set_cpu_flags()
  runtime.set_cpu_flags()
  flags = runtime.os.environ["XLA_FLAGS"].split()
  assert flags == ["--xla_force_host_platform_device_count=2", *runtime.CPU_FLAGS]
  mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
  monkeypatch.setenv("XLA_FLAGS", mine)
  runtime.set_cpu_flags()
  assert runtime.os.environ["XLA_FLAGS"] == mine
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv("WARMUP_RESEARCH_XLA_CPU_DEFAULTS", "0")
  runtime.set_cpu_flags()
  assert runtime.os.environ["XLA_FLAGS"] == ""


@pytest.mark.slow
def test_the_suites_xla_level_gives_the_numbers_of_users_default_level(tmp_path):
  # conftest compiles the suite's programs at --xla_backend_optimization_level=0
  # (for time); a user's process runs XLA's default level. Another program,
  # the same math: equal within what the suite allows across programs.
  rows = {}
  for name, flags in (("suite", os.environ["XLA_FLAGS"]), ("default", "")):
    assert ("optimization_level=0" in flags) == (name == "suite")
    r = subprocess.run(
        [sys.executable, "-m", "warmup_research", "train", "--config", "experiments/quickstart.py",
         "--workdir", str(tmp_path / name), "--no-progress", *TINY_FLAGS],
        cwd=REPO, env={**os.environ, "XLA_FLAGS": flags}, capture_output=True, text=True,
        timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows[name] = [json.loads(line) for line in
                  (tmp_path / name / "metrics" / "run.jsonl").read_text().splitlines()]
  assert sum("eval_loss" in r for r in rows["suite"]) == 3 and len(rows["suite"]) == 23
  assert_rows_close(rows["suite"], rows["default"])
