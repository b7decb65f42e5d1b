"""Live loggers: TensorBoard events (with hparams) and W&B (offline) carry the
same numbers as the JSONL files, while the run trains, without changing them."""
import json
import os
import struct
import subprocess
import sys

import pytest
from conftest import REPO, kill_after_checkpoint, tiny_config
from tensorboardX.proto import event_pb2

from warmup_research import loggers, loop, mesh
from warmup_research.errors import ConfigError

MESH = mesh.make(1, 1)


def read_events(directory):
  """(scalars {tag: {step: value}}, plugin tags) from TFRecord event files."""
  scalars, plugins = {}, set()
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        if v.metadata.plugin_data.plugin_name:
          plugins.add(v.tag)
        if v.HasField("simple_value"):
          scalars.setdefault(v.tag, {})[event.step] = v.simple_value
  return scalars, plugins


def _rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_tensorboard_carries_the_jsonl_numbers_and_hparams_and_changes_none(tmp_path):
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-3, 1e-2)]
  logged = [tmp_path / f"{i}.jsonl" for i in range(2)]
  loop.run_group(cfgs, metrics_paths=logged, checkpoint_dir=tmp_path / "ck", mesh=MESH,
                 progress=False, log=dict(
                     run_ids=["a", "b"], swepts=[{"optimizer.peak_lr": c.optimizer.peak_lr}
                                                 for c in cfgs],
                     tb_dirs=[tmp_path / "tb" / "a", tmp_path / "tb" / "b"],
                     backends=("tensorboard",), workdir=tmp_path))
  plain = [tmp_path / f"plain{i}.jsonl" for i in range(2)]
  loop.run_group(cfgs, metrics_paths=plain, checkpoint_dir=tmp_path / "ck2", mesh=MESH,
                 progress=False)
  for x, y in zip(logged, plain):
    assert x.read_text() == y.read_text()   # logging changes no number
  for name, path in zip("ab", logged):
    scalars, plugins = read_events(tmp_path / "tb" / name)
    rows = _rows(path)
    assert scalars["eval_loss"] == pytest.approx(
        {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}, rel=1e-6)
    assert scalars["train/loss"] == pytest.approx(
        {r["step"]: r["loss"] for r in rows if "loss" in r}, rel=1e-6)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= plugins


def test_hparams_hold_the_swept_and_headline_fields():
  hp = loggers.hparams_of(tiny_config(), {"optimizer.peak_lr": 3e-3, "data.seq_len": 16})
  assert hp["optimizer.peak_lr"] == 3e-3 and hp["data.seq_len"] == 16
  assert hp["optimizer.name"] == "adamw" and "schedule.warmup_steps" in hp
  assert loggers.parse("tensorboard, wandb") == ("tensorboard", "wandb")
  assert loggers.parse("none") == ()
  with pytest.raises(ConfigError, match="--logger: unknown logger 'mlflow'"):
    loggers.parse("tensorboard,mlflow")


@pytest.mark.slow
def test_events_are_there_while_the_run_trains_and_a_resume_purges_the_rest(tmp_path):
  wd = tmp_path / "run"
  cmd = [sys.executable, "-m", "warmup_research", "train", "--config",
         "experiments/quickstart.py", "--workdir", str(wd), "--no-progress",
         "--config.train.total_steps=40", "--config.train.checkpoint_every=10",
         "--config.train.eval_every=10", "--config.train.keep_checkpoints=5"]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  kill_after_checkpoint(proc, wd / "checkpoints", 10)
  scalars, _ = read_events(wd / "tb")
  assert 10 in scalars["eval_loss"] and 0 in scalars["eval_loss"]   # before the run ended
  assert subprocess.run(cmd, cwd=REPO, capture_output=True).returncode == 0
  scalars, plugins = read_events(wd / "tb")
  rows = {r["step"]: r["eval_loss"] for r in _rows(wd / "metrics.jsonl") if "eval_loss" in r}
  assert sorted(scalars["eval_loss"]) == sorted(rows) == [0, 10, 20, 30, 40]
  assert "_hparams_/experiment" in plugins


@pytest.mark.slow
def test_wandb_offline_logs_each_run_of_a_sweep(tmp_path):
  import wandb  # noqa: F401  (in the lock: its absence is a failure, not a skip)
  exp = tmp_path / "exp.py"
  exp.write_text(
      "from warmup_research import config as config_lib\n"
      "from warmup_research.sweep import axis\n"
      "def get_config():\n"
      "  c = config_lib.default_config()\n"
      "  c.model.d_model, c.model.num_layers, c.model.num_heads = 32, 1, 2\n"
      "  c.data.seq_len, c.data.batch_size, c.data.name = 32, 8, 'synthetic'\n"
      "  c.train.total_steps, c.train.eval_every, c.train.eval_batches = 10, 5, 1\n"
      "  c.train.log_every, c.train.checkpoint_every = 5, 10\n"
      "  return c\n"
      "def get_sweep():\n"
      "  return axis('optimizer.peak_lr', [1e-3, 1e-2])\n")
  wd = tmp_path / "w"
  env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
  r = subprocess.run([sys.executable, "-m", "warmup_research", "sweep", str(exp), "--workdir",
                      str(wd), "--no-progress", "--logger", "tensorboard,wandb"], cwd=REPO,
                     env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr
  for run_id in ("peak_lr=0.001", "peak_lr=0.01"):
    (log,) = [p for p in wd.glob("wandb/offline-run-*/run-*.wandb")
              if run_id.encode() in p.read_bytes()]
    final = [x for x in _rows(wd / "metrics" / f"{run_id}.jsonl") if "eval_loss" in x][-1]
    data = log.read_bytes()
    assert json.dumps(final["eval_loss"]).encode() in data and b"eval_loss" in data
    assert wd.name.encode() in data   # the group
  assert (wd / "tb" / "peak_lr=0.01").is_dir()
