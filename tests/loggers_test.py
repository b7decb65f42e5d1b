"""Live loggers: TensorBoard events (with hparams) and W&B (offline) carry the
same numbers as the JSONL files, while the run trains, without changing them,
and still carry each row once after a run is killed and resumed."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest
from helpers import REPO, kill_after_checkpoint, tiny_config
from tensorboardX.proto import event_pb2, plugin_hparams_pb2

from warmup_research import config as config_lib
from warmup_research import loggers, loop, mesh, metrics_io
from warmup_research.errors import ConfigError

MESH = mesh.make(1, 1)


def _tfrecords(path):
  """The Event protos of one event file (TFRecord framing; a torn last record,
  as a kill can leave, ends the file as it ends TensorBoard's reading)."""
  data = path.read_bytes()
  i = 0
  while i + 12 <= len(data):
    (n,) = struct.unpack("<Q", data[i:i + 8])
    if i + 16 + n > len(data):
      return
    yield event_pb2.Event.FromString(data[i + 12:i + 12 + n])
    i += 16 + n


def read_tensorboard(directory):
  """{tag: [(step, value), ...]} as TensorBoard shows one run's directory:
  its event files read in name order, and a SessionLog START at step s
  dropping every event read before it with step >= s, for all tags (the
  purge of tensorboard's event_accumulator for file_version 2 files). The
  value of a plugin summary (hparams) is its SummaryMetadata content."""
  events = []   # (tag, step, value), in reading order
  for path in sorted(directory.glob("events.out.tfevents.*")):
    for j, event in enumerate(_tfrecords(path)):
      if j == 0:   # the purge below is TensorBoard's rule for this version only
        assert event.file_version == "brain.Event:2", path
      if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
        events = [e for e in events if e[1] < event.step]
      for v in event.summary.value:
        value = (v.metadata.plugin_data.content if v.metadata.plugin_data.plugin_name
                 else v.simple_value)
        events.append((v.tag, event.step, value))
  out = {}
  for tag, step, value in events:
    out.setdefault(tag, []).append((step, value))
  return out


def tensorboard_of(rows):
  """What TensorBoard should show of a metrics file: each row once, in order."""
  out = {}
  for r in rows:
    for tag, v in loggers.scalars(r).items():
      out.setdefault(tag, []).append((r["step"], v))
  return out


def assert_scalars_match(shown, rows):
  """TensorBoard's scalars hold exactly the rows (float32 values, so approx)."""
  want = tensorboard_of(rows)
  got = {tag: points for tag, points in shown.items() if not tag.startswith("_hparams_/")}
  assert {t: [s for s, _ in p] for t, p in got.items()} == {
      t: [s for s, _ in p] for t, p in want.items()}
  for tag, points in want.items():
    assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag
  for tag in ("_hparams_/experiment", "_hparams_/session_start_info"):
    assert [s for s, _ in shown[tag]] == [0], tag   # once, at step 0


WANDB_BLOCK = 32768   # the LevelDB log format's block, which .wandb files use


def wandb_records(path):
  """The Record protos of a .wandb file: a 7-byte W&B header, then LevelDB log
  records (header: crc, length, type) that never cross a block's last 6 bytes."""
  from wandb.proto import wandb_internal_pb2
  data = path.read_bytes()
  assert data[:4] == b":W&B", path
  i, parts = 7, b""
  while i + 7 <= len(data):
    left = WANDB_BLOCK - i % WANDB_BLOCK
    if left < 7:   # padding
      i += left
      continue
    _, n, kind = struct.unpack("<IHB", data[i:i + 7])
    body = data[i + 7:i + 7 + n]
    if kind == 0 or len(body) < n:   # zeros at a block's end, or a torn record
      break
    i += 7 + n
    assert kind in (1, 2, 3, 4), (path, i, kind)   # full, first, middle, last
    parts = body if kind in (1, 2) else parts + body
    if kind in (1, 4):
      yield wandb_internal_pb2.Record.FromString(parts)


def wandb_runs(workdir, name):
  """[(start time, run id, history)] of the offline W&B runs named `name`,
  oldest first; history is [(step, {key: value})] without W&B's own keys."""
  runs = []
  for path in (workdir / "wandb").glob("offline-run-*/run-*.wandb"):
    run, history = None, []
    for r in wandb_records(path):
      if r.WhichOneof("record_type") == "run":
        run = r.run
      elif r.WhichOneof("record_type") == "history":
        item = {it.key or "/".join(it.nested_key): json.loads(it.value_json)
                for it in r.history.item}
        history.append((item["_step"], {k: v for k, v in item.items() if not k.startswith("_")}))
    if run is not None and run.display_name == name:
      runs.append(((run.start_time.seconds, run.start_time.nanos), run.run_id, history))
  return sorted(runs)


def wandb_of(rows):
  """What W&B should hold of a metrics file: one history row per step, in
  order (an eval row after n updates shares step n with the train row of
  update n)."""
  out = {}
  for r in rows:
    out.setdefault(r["step"], {}).update(loggers.scalars(r))
  return list(out.items())


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
  """W&B offline, its config and cache under tmp_path; torn down after, so
  the next test's environment is read afresh."""
  import wandb  # in the lock: its absence is a failure, not a skip
  for var, value in dict(WANDB_MODE="offline", WANDB_SILENT="true",
                         WANDB_CONFIG_DIR=tmp_path / "wandb_config",
                         WANDB_CACHE_DIR=tmp_path / "wandb_cache",
                         WANDB_DATA_DIR=tmp_path / "wandb_data").items():
    monkeypatch.setenv(var, str(value))
  yield
  wandb.teardown()


def _rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def _killed_after(tmp_path, name, cut, keep=0.8):
  """A copy of the run `name` (checkpoints every 5 of 20 updates, metrics
  file NAME.jsonl) as if killed after its checkpoint at `cut`: later
  checkpoints gone, the first `keep` share of its metrics file written (a
  torn last line too). Its event files and W&B run, shared, went further."""
  ckpt = tmp_path / f"{name}_cut{cut}"
  shutil.copytree(tmp_path / name, ckpt)
  for step in range(cut + 5, 25, 5):
    shutil.rmtree(ckpt / str(step))
  path = tmp_path / f"{name}_cut{cut}.jsonl"
  text = (tmp_path / f"{name}.jsonl").read_text()
  path.write_text(text[: int(len(text) * keep)])
  return ckpt, path


def test_tensorboard_carries_the_jsonl_numbers_and_hparams_and_changes_none(tmp_path):
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-3, 1e-2)]
  logged = [tmp_path / f"{i}.jsonl" for i in range(2)]
  loop.run_group(cfgs, metrics_paths=logged, checkpoint_dir=tmp_path / "ck", mesh=MESH,
                 progress=False, log=loggers.Targets(
                     run_ids=["a", "b"], swepts=[{"optimizer.peak_lr": c.optimizer.peak_lr}
                                                 for c in cfgs],
                     tb_dirs=[tmp_path / "tb" / "a", tmp_path / "tb" / "b"],
                     backends=("tensorboard",), workdir=tmp_path))
  plain = [tmp_path / f"plain{i}.jsonl" for i in range(2)]
  loop.run_group(cfgs, metrics_paths=plain, checkpoint_dir=tmp_path / "ck2", mesh=MESH,
                 progress=False)
  for x, y in zip(logged, plain):
    assert x.read_text() == y.read_text()   # logging changes no number
  for name, path, cfg in zip("ab", logged, cfgs):
    shown = read_tensorboard(tmp_path / "tb" / name)
    assert_scalars_match(shown, _rows(path))
    ((_, content),) = shown["_hparams_/session_start_info"]
    hp = plugin_hparams_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert set(hp) == set(config_lib.flatten(cfg.to_dict()))
    assert hp["optimizer.peak_lr"].number_value == cfg.optimizer.peak_lr


def test_tags_are_train_and_eval_and_hparams_hold_the_whole_config():
  row = {"step": 3, **{k: float(i) for i, k in enumerate(metrics_io.TRAIN_KEYS)}}
  assert loggers.scalars(row) == {f"train/{k}": float(i)
                                  for i, k in enumerate(metrics_io.TRAIN_KEYS)}
  assert loggers.scalars({"step": 10, "eval_loss": 2.5}) == {"eval/loss": 2.5}
  cfg = tiny_config(**{"optimizer.peak_lr": 3e-3})
  flat = config_lib.flatten(cfg.to_dict())
  hp = loggers.hparams_of(cfg, {"optimizer.peak_lr": 3e-3})
  assert set(hp) == set(flat) and len(flat) > 40   # every field, not a headline few
  for field, value in flat.items():   # scalars as they are, the rest (None too) as JSON
    assert hp[field] == (value if isinstance(value, (bool, int, float, str))
                         else json.dumps(value)), field
  assert hp["train.prune_over"] == '["optimizer.peak_lr"]' and hp["data.seed"] == "null"
  assert loggers.parse("tensorboard, none") == ("tensorboard",)
  assert loggers.parse("none") == ()
  with pytest.raises(ConfigError, match="--logger: unknown logger 'mlflow'"):
    loggers.parse("tensorboard,mlflow")


def test_a_resumed_run_holds_each_row_once_in_tensorboard_and_wandb(tmp_path, wandb_offline):
  # Killed after its checkpoint at 10 (of 20; eval every 10) with events and
  # W&B rows past it: TensorBoard (purges applied) and the newest W&B run of
  # the name then hold exactly the metrics file's rows, the eval at 10 once.
  cfg = tiny_config(**{"train.keep_checkpoints": 5})
  log = loggers.Targets(run_ids=["r"], swepts=[{}], tb_dirs=[tmp_path / "tb"],
                        backends=("tensorboard", "wandb"), workdir=tmp_path)
  loop.run_group([cfg], metrics_paths=[tmp_path / "full.jsonl"],
                 checkpoint_dir=tmp_path / "full", mesh=MESH, progress=False, log=log)
  ckpt, path = _killed_after(tmp_path, "full", 10)
  loop.run_group([cfg], metrics_paths=[path], checkpoint_dir=ckpt, mesh=MESH,
                 progress=False, log=log)
  rows = _rows(path)
  assert rows == _rows(tmp_path / "full.jsonl")   # resumed: the same rows
  assert_scalars_match(read_tensorboard(tmp_path / "tb"), rows)
  (*_, (_, _, history)) = wandb_runs(tmp_path, "r")
  assert history == wandb_of(rows)   # the newest run holds the whole curve, each step once


def test_a_restart_from_update_0_leaves_no_duplicates_in_tensorboard(tmp_path, monkeypatch):
  # A run killed before its first checkpoint trains again from update 0 (its
  # metrics file emptied); its earlier attempts' events must not show. The
  # third attempt starts within the second of the second.
  cfg = tiny_config()
  path, tb = tmp_path / "m.jsonl", tmp_path / "tb"
  rows = [dict(step=0, eval_loss=5.5), *({"step": s, **{k: s + 0.5 for k in
                                                         metrics_io.TRAIN_KEYS}}
                                         for s in range(6))]

  def attempt(now, n, finish):
    monkeypatch.setattr(time, "time", lambda: now)
    metrics_io.write(path, [])   # as the loop starts a run without a checkpoint
    logger = loggers.Logger([path], run_ids=["r"], cfgs=[cfg], swepts=[{}], tb_dirs=[tb])
    for row in rows[:n]:
      logger.write([row])
    logger.flush()   # a checkpoint's flush; a killed attempt goes no further
    if finish:
      logger.close()
    monkeypatch.undo()

  attempt(1_700_000_000.25, 5, finish=False)
  attempt(1_700_000_001.25, len(rows), finish=True)
  assert _rows(path) == rows
  assert_scalars_match(read_tensorboard(tb), rows)
  attempt(1_700_000_001.5, len(rows), finish=True)
  assert_scalars_match(read_tensorboard(tb), rows)
  assert len(list(tb.glob("events.out.tfevents.*"))) == 3


def test_a_resume_into_a_run_without_event_files_logs_the_whole_file(tmp_path):
  # TensorBoard turned on at a resume, or tb/ removed: nothing earlier to keep,
  # so the new event file holds every row the metrics file kept, and hparams.
  path, tb = tmp_path / "m.jsonl", tmp_path / "tb"
  rows = [dict(step=0, eval_loss=5.5), *({"step": s, "loss": s + 0.5} for s in range(4)),
          dict(step=4, eval_loss=4.5)]
  metrics_io.write(path, rows)   # cut back to the checkpoint at 4
  logger = loggers.Logger([path], run_ids=["r"], cfgs=[tiny_config()], swepts=[{}],
                          tb_dirs=[tb], start=4)
  logger.write([dict(step=4, loss=9.0)])
  logger.close()
  assert _rows(path) == [*rows, dict(step=4, loss=9.0)]
  assert_scalars_match(read_tensorboard(tb), _rows(path))


LOGGER_AT_1024_FILES = """
import json, os, pathlib, resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
from warmup_research import config as config_lib
from warmup_research import loggers
out, k = pathlib.Path(sys.argv[1]), int(sys.argv[2])
paths = [out / f"{i}.jsonl" for i in range(k)]
for p in paths:
  p.write_text("")   # as the loop makes them
cfg = config_lib.default_config()
before = len(os.listdir("/proc/self/fd"))
logger = loggers.Logger(paths, run_ids=[str(i) for i in range(k)], cfgs=[cfg] * k,
                        swepts=[{}] * k, tb_dirs=[out / "tb" / str(i) for i in range(k)])
for step in range(3):
  logger.write([dict(step=step, loss=i + step / 4) for i in range(k)])
  if step == 1:
    logger.flush()
logger.write([dict(step=3, eval_loss=i + 0.5) if i % 2 else None for i in range(k)])
held = len(os.listdir("/proc/self/fd")) - before
logger.close()
print(json.dumps(dict(held=held)))
"""


def test_a_logger_of_1500_variants_runs_at_1024_open_files(tmp_path):
  # Files are opened per flush, one at a time, not held per variant: a grid of
  # thousands of variants must not hit `ulimit -n` (1024 here, in a child).
  k = 1500
  r = subprocess.run([sys.executable, "-c", LOGGER_AT_1024_FILES, str(tmp_path), str(k)],
                     cwd=REPO, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert json.loads(r.stdout.splitlines()[-1])["held"] <= 2   # none per variant
  for i in (0, 1, 2, k - 1):
    rows = [dict(step=step, loss=i + step / 4) for step in range(3)]
    rows += [dict(step=3, eval_loss=i + 0.5)] if i % 2 else []
    assert (tmp_path / f"{i}.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    assert_scalars_match(read_tensorboard(tmp_path / "tb" / str(i)), rows)
  assert all((tmp_path / f"{i}.jsonl").stat().st_size for i in range(k))


def _no_wandb_credentials(tmp_path, monkeypatch):
  """An environment where wandb finds no key and no mode: a HOME without a
  netrc, no settings files, no WANDB_* variables."""
  for var in [v for v in os.environ if v.startswith("WANDB_")] + ["NETRC"]:
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
  monkeypatch.chdir(tmp_path)   # no ./wandb/settings either


def test_wandb_without_a_key_is_refused_by_parse_before_anything_is_written(tmp_path,
                                                                            monkeypatch):
  _no_wandb_credentials(tmp_path, monkeypatch)
  with pytest.raises(ConfigError, match=r"--logger: .*WANDB_API_KEY.*wandb login.*"
                                        r"WANDB_MODE=offline"):
    loggers.parse("tensorboard,wandb")
  for mode in ("offline", "dryrun", "disabled"):
    monkeypatch.setenv("WANDB_MODE", mode)
    assert loggers.parse("wandb") == ("wandb",)
  monkeypatch.setenv("WANDB_MODE", "online")
  with pytest.raises(ConfigError, match="--logger"):
    loggers.parse("wandb")
  monkeypatch.setenv("WANDB_API_KEY", "short")   # wandb would refuse its format
  with pytest.raises(ConfigError, match="--logger: .*WANDB_API_KEY"):
    loggers.parse("wandb")
  monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
  assert loggers.parse("wandb") == ("wandb",)
  monkeypatch.delenv("WANDB_API_KEY")
  netrc = tmp_path / ".netrc"   # what `wandb login` writes
  netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'k' * 40}\n")
  netrc.chmod(0o600)
  assert loggers.parse("wandb") == ("wandb",)
  # wandb is imported only when asked for (it is heavy)
  r = subprocess.run([sys.executable, "-c", "import sys; from warmup_research import loggers; "
                      "loggers.parse('tensorboard'); print('wandb' in sys.modules)"],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.stdout.strip() == "False", r.stderr


@pytest.mark.slow
def test_events_are_there_while_the_run_trains_and_a_resume_purges_the_rest(tmp_path):
  wd = tmp_path / "run"
  cmd = [sys.executable, "-m", "warmup_research", "train", "--config",
         "experiments/quickstart.py", "--workdir", str(wd), "--no-progress",
         "--config.model.d_model=32", "--config.model.num_layers=1", "--config.model.num_heads=2",
         "--config.data.seq_len=32", "--config.data.batch_size=4", "--config.train.log_every=10",
         "--config.train.total_steps=400", "--config.train.checkpoint_every=100",
         "--config.train.eval_every=100", "--config.train.keep_checkpoints=5"]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  kill_after_checkpoint(proc, wd / "checkpoints" / "g000", 100)
  evals = [s for s, _ in read_tensorboard(wd / "tb" / "run")["eval/loss"]]
  assert 100 in evals and 0 in evals   # before the run ended
  assert subprocess.run(cmd, cwd=REPO, capture_output=True).returncode == 0
  rows = _rows(wd / "metrics" / "run.jsonl")
  assert_scalars_match(read_tensorboard(wd / "tb" / "run"), rows)
  assert [s for s, _ in read_tensorboard(wd / "tb" / "run")["eval/loss"]] == [0, 100, 200, 300,
                                                                              400]


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
    ((_, _, history),) = wandb_runs(wd, run_id)
    assert history == wandb_of(_rows(wd / "metrics" / f"{run_id}.jsonl"))
    (log,) = [p for p in wd.glob("wandb/offline-run-*/run-*.wandb")
              if run_id.encode() in p.read_bytes()]
    assert wd.name.encode() in log.read_bytes()   # the group
  assert (wd / "tb" / "peak_lr=0.01").is_dir()
