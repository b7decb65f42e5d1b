"""Config schema, defaults, loading, overrides and validation.

Configs are `ml_collections.ConfigDict`s (an override of the wrong type
fails), written as code in `experiments/*.py` (`get_config(arg=None)`).
Every bad value is caught here, by its dotted name, before any compute.
Each field's meaning sits beside its default in `default_config`.

Static vs dynamic: `DYNAMIC_FIELDS` ride in the traced `hp` pytree (or
become PRNG keys and batch streams), so changing them never recompiles.
Every other field is static: it shapes arrays or the program, and runs
that differ in one need different compiled programs.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import pathlib
import sys

import ml_collections
from ml_collections import config_dict

from warmup_research import schedules
from warmup_research.errors import ConfigError
from warmup_research.text import MIN_BPE_VOCAB

OPTIMIZERS = ("adamw", "adam", "sgd", "radam", "lion", "gi_adam", "gi_adam_bc", "muon",
              "adamw_normalized", "schedule_free_adamw")
# The optimizer fields a family does not read (optimizers.py): set away from
# their defaults, they would mean a run that is not the one trained.
UNUSED_BY = {"muon": ("nesterov",), "adamw_normalized": ("momentum", "nesterov"),
             "schedule_free_adamw": ("momentum", "nesterov")}
# The hyperparameters a family's chain reads at each update (optimizers.py),
# so the only ones a schedule (optimizer.H_start / H_end) may vary. adam has
# no weight decay; schedule_free_adamw's b1 is fixed in its state at init.
SCHEDULABLE = {"adamw": ("b1", "b2", "weight_decay"), "adam": ("b1", "b2"),
               "sgd": ("momentum", "weight_decay"), "radam": ("b1", "b2", "weight_decay"),
               "lion": ("b1", "b2", "weight_decay"), "gi_adam": ("b1", "b2", "weight_decay"),
               "gi_adam_bc": ("b1", "b2", "weight_decay"),
               "muon": ("b1", "b2", "momentum", "weight_decay"),
               "adamw_normalized": ("b1", "b2", "weight_decay"),
               "schedule_free_adamw": ("b2", "weight_decay")}
HP_SCHEDULED = ("b1", "b2", "momentum", "weight_decay")   # optimizers.SCHEDULED
HP_SCHEDULE_FIELDS = tuple(f"optimizer.{h}_{k}" for h in HP_SCHEDULED
                           for k in ("start", "warmup_steps", "end", "cooldown_steps"))
NORMS = ("pre", "post")
BLOCKS = ("gpt2", "llama")
DTYPES = ("float32", "bfloat16")
ATTENTIONS = ("einsum", "xla", "cudnn")
BUILTIN_DATASETS = ("bytes", "prose", "text", "synthetic")
MAX_BYTES_SEQ_LEN = 1024   # a window of a record of 1025 tokens (data.RECORD_LEN)
MAX_SEED = 2**32 - 1     # a PRNG key holds 32 bits of seed: larger seeds would collide
MAX_STEPS = 2**31 - 2    # step counters are int32

DYNAMIC_FIELDS = (
    "seed", "data.seed", "model.z_loss",
    "schedule.warmup_shape", "schedule.warmup_steps", "schedule.warmup_ratio",
    "schedule.warmup_init_frac", "schedule.warmup_exp_start", "schedule.warmup_power",
    "schedule.decay_shape", "schedule.final_frac", "schedule.rsqrt_timescale",
    "schedule.cooldown_steps", "schedule.cooldown_ratio", "schedule.cooldown_shape",
    "optimizer.peak_lr", "optimizer.b1", "optimizer.b2", "optimizer.eps",
    "optimizer.weight_decay", "optimizer.momentum", "optimizer.clip_norm",
    "optimizer.lr_mult_embed", "optimizer.lr_mult_matrices", "optimizer.lr_mult_head",
    "optimizer.lr_mult_norms", *HP_SCHEDULE_FIELDS, "optimizer.weight_decay_tied",
    "train.divergence_bound", "train.stall_margin", "train.target_eval_loss",
)


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                     # model-init seed (a traced PRNG key)

  c.data = ml_collections.ConfigDict()
  c.data.name = "bytes"          # 'bytes' (offline byte corpus), 'prose' (the stdlib's docstrings
                                 # and comments), 'text' (the files of corpus_dir), 'synthetic'
                                 # (copy task), or a TFDS catalog name prepared as array_record
                                 # (e.g. 'lm1b'); see docs/data.md
  c.data.corpus_dir = ""         # text directory for 'bytes' and 'text' ('' = Python's standard
                                 # library); 'text' also reads .jsonl / .parquet (text_key)
  c.data.tokenizer = "bytes"     # 'bytes' | 'bpe:N' (byte-level BPE of N tokens, trained once on
                                 # the train split) | path of a tokenizer.json or SentencePiece
                                 # .model (static: model.vocab_size must hold its vocabulary)
  c.data.data_dir = ""           # TFDS data dir ('' = $WARMUP_RESEARCH_DATA_DIR or
                                 # ~/.cache/warmup_research/tensorflow_datasets)
  c.data.seed = config_dict.placeholder(int)  # train batch stream: batch = f(data.seed, step);
                                 # None = the run's `seed`, so a seed is a whole replicate
  c.data.seq_len = 128           # tokens per row (<= 1024 but for a catalog set as bytes)
  c.data.batch_size = 32         # rows per step (split over the mesh's data axis)
  c.data.text_key = "text"       # text feature of a catalog dataset, .jsonl or .parquet
  c.data.train_split = "train"   # catalog splits (TFDS slices and sums allowed)
  c.data.eval_split = "validation"

  c.model = ml_collections.ConfigDict()
  c.model.vocab_size = 256
  c.model.d_model = 128
  c.model.num_layers = 2
  c.model.num_heads = 4          # must divide d_model
  c.model.block = "gpt2"         # 'gpt2' (LayerNorm, learned positions, GELU MLP) | 'llama'
                                 # (RMSNorm, rotary positions, SwiGLU MLP; no biases)
  c.model.mlp_ratio = 4.0        # MLP hidden = int(mlp_ratio * d_model); llama: 2/3 of that
  c.model.norm = "pre"           # 'pre' (x + f(N(x))) | 'post' (N(x + f(x))); N: the block's
  c.model.qk_norm = False        # the block's norm of queries and keys, per head
  c.model.init_scale = 0.02      # std of the weights (residual outputs scaled down, GPT-2)
  c.model.tie_embeddings = True  # output projection = input embedding
  c.model.dtype = "float32"      # compute dtype: 'float32' | 'bfloat16' (params stay f32)
  c.model.attention = "einsum"   # 'einsum' | 'xla' | 'cudnn' (GPU + bfloat16): see model.py
  c.model.z_loss = 0.0           # coefficient of Wortsman et al.'s z-loss (traced)

  # Semantics (step indexing, shapes, the ratio conversion): schedules.py.
  c.schedule = ml_collections.ConfigDict()
  c.schedule.warmup_shape = "linear"  # none | linear | cosine | exponential | polynomial
  c.schedule.warmup_steps = config_dict.placeholder(int)     # warmup length in updates, or
  c.schedule.warmup_ratio = config_dict.placeholder(float)   # as a fraction of total_steps
  c.schedule.warmup_init_frac = 0.0   # start LR / peak LR (linear, cosine, polynomial)
  c.schedule.warmup_exp_start = 0.01  # start LR / peak LR of the exponential warmup
  c.schedule.warmup_power = 2.0       # exponent of the polynomial warmup
  c.schedule.decay_shape = "cosine"   # constant | linear | cosine | rsqrt | exponential | wsd
  c.schedule.final_frac = 0.1         # final LR / peak LR
  c.schedule.rsqrt_timescale = 0.0    # rsqrt decay's tau (<= 0: max(warmup_steps, 1))
  c.schedule.cooldown_steps = config_dict.placeholder(int)    # wsd cooldown length, or
  c.schedule.cooldown_ratio = config_dict.placeholder(float)  # as a fraction of total_steps
  c.schedule.cooldown_shape = "linear"  # wsd cooldown: linear | cosine | 1-sqrt

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"      # adamw | adam | sgd | radam | lion | gi_adam | gi_adam_bc |
                                  # muon | adamw_normalized | schedule_free_adamw (optimizers.py)
  c.optimizer.peak_lr = 1e-3
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.95
  c.optimizer.eps = 1e-8
  c.optimizer.weight_decay = 0.1  # decoupled, on matrices only (none for 'adam')
  c.optimizer.momentum = 0.9      # sgd, and muon's matrices (Jordan's default: 0.95)
  c.optimizer.nesterov = False    # sgd only (static; muon is always Nesterov)
  c.optimizer.clip_norm = 1.0     # global-norm clipping (0 = off)
  c.optimizer.lr_mult_embed = 1.0     # per-group LR multipliers (traced; model.lr_group):
  c.optimizer.lr_mult_matrices = 1.0  # embeddings (a tied head too) and positions, the
  c.optimizer.lr_mult_head = 1.0      # blocks' weight matrices, an untied head, and
  c.optimizer.lr_mult_norms = 1.0     # everything else (norm scales, biases)
  c.optimizer.weight_decay_tied = True  # decay times the LR (decoupled, AdamW's); False:
                                        # wd * p per update, times no LR (independent;
                                        # not for adam, schedule_free_adamw)
  # Schedules of H in b1, b2, momentum, weight_decay (traced; optimizers.py has the formula;
  # update 0 is the first): a linear warmup from H_start to optimizer.H over updates
  # 0 .. H_warmup_steps - 1, and a linear cooldown from optimizer.H to H_end over the last
  # H_cooldown_steps updates. None / 0 = none. Only for a H the family reads (SCHEDULABLE).
  # E.g. modded-nanogpt's Muon momentum: momentum=0.95, momentum_start=0.85,
  # momentum_warmup_steps=300.
  for h in HP_SCHEDULED:
    c.optimizer[f"{h}_start"] = config_dict.placeholder(float)
    c.optimizer[f"{h}_warmup_steps"] = 0
    c.optimizer[f"{h}_end"] = config_dict.placeholder(float)
    c.optimizer[f"{h}_cooldown_steps"] = 0

  c.train = ml_collections.ConfigDict()
  c.train.total_steps = 1000      # optimizer updates: step 0 .. total_steps - 1
  c.train.grad_accum = 1          # microbatches per update (a scan; the gradient is their
                                  # mean): must divide each data shard's rows
  c.train.eval_every = 100        # eval cadence, in updates
  c.train.eval_batches = 4        # fixed validation batches per eval
  c.train.log_every = 10          # a metrics row every k updates (and the last)
  c.train.checkpoint_every = 200  # orbax cadence, in updates
  c.train.keep_checkpoints = 2    # how many checkpoints to keep
  c.train.checkpoint_steps = []   # extra checkpoints (updates done), kept for `analyze`
  c.train.compact_frozen = 0.0    # vmap only: after an eval, once this share of the running
                                  # variants is frozen (diverged, pruned), run only the rest
                                  # (a smaller program; 0 = never; see loop.py)
  c.train.prune_steps = []        # successive halving's rungs (updates, multiples of
                                  # eval_every; [] = off): at each, a comparison set keeps
  c.train.prune_keep = 1 / 3      # this share of its running variants, by eval loss;
  c.train.prune_over = ["optimizer.peak_lr"]  # a set: variants that differ only in these
  c.train.divergence_bound = 100.0  # a loss above this (or non-finite) is divergence
  c.train.stall_margin = 0.25     # stalled: final eval loss above the data's unigram
                                  # entropy minus this (nats per token)
  c.train.branch_at = 0           # > 0: a cooldown branch, started from its trunk's checkpoint
                                  # at this update (the grid's variant equal to it but for the
                                  # schedule: branches.py); 0 = trained from update 0
  c.train.target_eval_loss = 0.0  # time to target (AlgoPerf's score): updates and seconds
                                  # until an eval first reaches this loss, in runs.csv
                                  # (nats per token; 0 = none; resolution: eval_every)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.variant = 0              # device-mesh axis sizes (0 = pick; see mesh.py)
  c.mesh.data = 0
  c.mesh.variant_loop = "auto"    # a device's variants: 'vmap' (batched), 'map' (in turn),
                                  # 'auto' (map on CPU, vmap on accelerators)
  return c


# --------------------------------------------------------------------- loading


def _experiments_package(directory: pathlib.Path) -> str:
  """A package for an experiment file's directory (registered once), so the
  file can import its neighbours relatively (`from ._ablation import ...`)
  wherever it lives, without touching sys.path."""
  directory = directory.resolve()
  name = "_wr_experiments_" + hashlib.sha1(str(directory).encode()).hexdigest()[:12]
  if name not in sys.modules:
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(directory)]
    sys.modules[name] = importlib.util.module_from_spec(spec)
  return name


def _module(spec: str):
  path, _, arg = spec.partition(":")
  p = pathlib.Path(path)
  if not p.is_file():
    raise ConfigError("--config", f"no such config file: {path}")
  if p.suffix != ".py":
    raise ConfigError("--config", f"{path} is not an experiment file (a .py file with "
                      "get_config())")
  package = _experiments_package(p.parent)
  mod_spec = importlib.util.spec_from_file_location(f"{package}.{p.stem}", p)
  module = importlib.util.module_from_spec(mod_spec)
  try:
    mod_spec.loader.exec_module(module)
  except SystemExit as e:  # sys.exit() in the file would end the command as if it had run
    raise ConfigError("--config", f"{path}: {_exits(e)} at import; an experiment file must "
                      "not exit: it only defines get_config() (and get_sweep() ...)") from None
  except Exception as e:  # a broken experiment file is bad input too
    raise ConfigError("--config", f"{path} failed to import: {type(e).__name__}: {e}") from e
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError("--config", f"{path} has no get_config() function")
  return module, path, arg


def _call(module, name: str, path: str, arg: str):
  """module.name(arg) (or with no argument); what it raises is bad input."""
  fn = getattr(module, name)
  try:
    return fn(arg) if arg else fn()
  except ConfigError:
    raise
  except SystemExit as e:
    raise ConfigError("--config", f"{path}: {name}() {_exits(e)}; it must return its value, "
                      "not exit") from None
  except TypeError as e:
    if arg and "argument" in str(e):
      raise ConfigError("--config", f"{path}: {name}() takes no argument, so ':{arg}' cannot "
                        f"be passed; run it as {path}") from e
    raise ConfigError("--config", f"{path}: {name}() raised TypeError: {e}") from e
  except Exception as e:  # an experiment file's own error is bad input too
    raise ConfigError("--config", f"{path}: {name}() raised {type(e).__name__}: {e}") from e


def _exits(e: SystemExit) -> str:
  return f"called sys.exit({e.code!r})" if e.code is not None else "called sys.exit()"


def load(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/experiment.py[:arg]` by calling its `get_config(arg)`;
  a field the schema (`default_config`) does not have is refused."""
  module, path, arg = _module(spec)
  cfg = _call(module, "get_config", path, arg)
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise ConfigError("--config", f"{path}: get_config() must return a ConfigDict, got "
                      f"{type(cfg).__name__}")
  schema = flatten(default_config().to_dict())
  for dotted in flatten(cfg.to_dict()):
    if dotted not in schema:
      section = dotted.rpartition(".")[0]
      near = sorted(k.rpartition(".")[2] for k in schema if k.rpartition(".")[0] == section)
      sections = sorted({k.split(".")[0] for k in schema})
      raise ConfigError(f"config.{dotted}", f"set by {path}, but no such field; fields here: "
                        f"{', '.join(near or sections)}")
  return cfg


def load_sweep(spec: str) -> list[dict]:
  """The grid of `path/to/experiment.py[:arg]`: `get_sweep(arg)`, or one point."""
  module, path, arg = _module(spec)
  if not callable(getattr(module, "get_sweep", None)):
    return [{}]
  return _call(module, "get_sweep", path, arg)


def load_claims(spec: str) -> list:
  """What the paper predicts, from `get_claims(arg)` (see claims.py); [] if none."""
  module, path, arg = _module(spec)
  if not callable(getattr(module, "get_claims", None)):
    return []
  return _call(module, "get_claims", path, arg)


def load_heatmaps(spec: str) -> list:
  """The (x, y) field pairs drawn as heatmaps, from `get_heatmaps(arg)`; [] if none."""
  module, path, arg = _module(spec)
  if not callable(getattr(module, "get_heatmaps", None)):
    return []
  return _call(module, "get_heatmaps", path, arg)


def parse_value(text: str):
  """'3e-3' -> 0.003, 'True' -> True, '[1, 2]' -> [1, 2], 'post' -> 'post'."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def set_field(cfg: ml_collections.ConfigDict, dotted: str, value) -> None:
  """Sets `cfg.<dotted> = value`; unknown keys and wrong types are ConfigErrors."""
  *parents, leaf = dotted.split(".")
  node = cfg
  for i, key in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      raise ConfigError(f"config.{dotted}", f"no such field {'.'.join(parents[:i+1])!r}; "
                        f"fields here: {', '.join(sorted(node.keys()))}")
    node = node[key]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise ConfigError(f"config.{dotted}", "no such field; fields here: "
                      f"{', '.join(sorted(node.keys()))}")
  if isinstance(node[leaf], ml_collections.ConfigDict):
    raise ConfigError(f"config.{dotted}", "is a section, not a value")
  kind = node.get_type(leaf)
  if kind is float and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  elif kind is int and isinstance(value, float) and value.is_integer():
    value = int(value)   # 1e8, 100.0: integral floats are ints
  try:
    node[leaf] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.{dotted}", f"wrong type for {value!r}: {e}") from e


def apply_overrides(cfg, overrides: dict[str, str]) -> ml_collections.ConfigDict:
  """Applies `{'optimizer.peak_lr': '3e-3', ...}` (values as typed on a CLI).

  Returns a copy; `cfg` itself is not changed.
  """
  cfg = copy.deepcopy(cfg)
  for dotted, text in overrides.items():
    set_field(cfg, dotted, parse_value(text) if isinstance(text, str) else text)
  return cfg


def to_json(cfg) -> str:
  return json.dumps(cfg.to_dict(), sort_keys=True)


# Fields added after runs were first saved, with the value that reproduces
# the code before them (attention was `jax.nn.dot_product_attention`).
ADDED_FIELDS = {"model.attention": "xla", "model.block": "gpt2", "train.grad_accum": 1,
                "data.tokenizer": "bytes",
                "train.checkpoint_steps": [],
                "train.compact_frozen": 0.0, "train.prune_steps": [], "train.prune_keep": 1 / 3,
                "train.prune_over": ["optimizer.peak_lr"], "train.target_eval_loss": 0.0,
                "train.branch_at": 0,
                **{f"optimizer.lr_mult_{g}": 1.0 for g in ("embed", "matrices", "head", "norms")},
                # no hyperparameter schedules: every H constant, decay tied to the LR
                **{f: None if f.endswith(("_start", "_end")) else 0 for f in HP_SCHEDULE_FIELDS},
                "optimizer.weight_decay_tied": True}


def from_saved(saved: dict) -> ml_collections.ConfigDict:
  """A run config read back from a workdir (`config.json`, `sweep.json`),
  with the fields it predates filled in as the code that saved it ran."""
  cfg = ml_collections.ConfigDict(saved)
  for dotted, legacy in ADDED_FIELDS.items():
    section, key = dotted.split(".")
    if key not in cfg[section]:
      cfg[section][key] = copy.deepcopy(legacy)
  return cfg


def canonical(record: dict) -> dict:
  """A recorded config (config.json) or grid (sweep.json) without the added
  fields that hold their legacy value: adding a field whose default
  reproduces the older code changes no record's hash, so the committed
  results made before it still match their grids."""
  def strip(cfg):
    if not isinstance(cfg, dict):
      return cfg
    cfg = copy.deepcopy(cfg)
    for dotted, legacy in ADDED_FIELDS.items():
      section, key = dotted.split(".")
      if isinstance(cfg.get(section), dict) and cfg[section].get(key, object()) == legacy:
        del cfg[section][key]
    return cfg
  if "runs" in record:
    return dict(record, runs=[dict(r, config=strip(r["config"])) if "config" in r else r
                              for r in record["runs"]])
  return strip(record)


def upgrade_record(record: dict) -> dict:
  """A workdir's recorded `config.json` or `sweep.json` with `from_saved`
  applied to its config(s), to compare with a new one."""
  if "runs" in record:
    return dict(record, runs=[dict(r, config=from_saved(r["config"]).to_dict())
                              for r in record["runs"]])
  return from_saved(record).to_dict()


VARIANT_LOOPS = ("auto", "vmap", "map")


def static_signature(cfg) -> str:
  """JSON of the static fields: equal signatures share one compiled program."""
  flat = flatten(cfg.to_dict())
  return json.dumps({k: v for k, v in flat.items() if k not in DYNAMIC_FIELDS}, sort_keys=True)


def flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


# ------------------------------------------------------------------ validation


def _check(cond: bool, field: str, message: str):
  if not cond:
    raise ConfigError(f"config.{field}", message)


def _number(cfg, field, *, lo=None, hi=None, lo_open=False, hi_open=False, integer=False):
  section, key = field.split(".") if "." in field else (None, field)
  value = cfg[section][key] if section else cfg[key]
  kind = "an integer" if integer else "a number"
  ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
  ok_type = ok_type and not isinstance(value, bool) and (integer or math.isfinite(value))
  lo_txt = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
  hi_txt = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
  allowed = " and ".join(t for t in (lo_txt, hi_txt) if t)
  msg = f"must be {kind}{' ' + allowed if allowed else ''}, got {value!r}"
  _check(ok_type, field, msg)
  if lo is not None:
    _check(value > lo if lo_open else value >= lo, field, msg)
  if hi is not None:
    _check(value < hi if hi_open else value <= hi, field, msg)
  return value


def _choice(cfg, field, allowed):
  section, key = field.split(".")
  value = cfg[section][key]
  _check(value in allowed, field, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
  return value


def validate(cfg) -> None:
  """Raises ConfigError (naming the field and what is allowed) on bad values."""
  for section in ("data", "model", "schedule", "optimizer", "train", "mesh"):
    _check(section in cfg, section, "missing section")
  _number(cfg, "seed", lo=0, hi=MAX_SEED, integer=True)
  t = cfg.train
  total = _number(cfg, "train.total_steps", lo=1, hi=MAX_STEPS, integer=True)
  _number(cfg, "train.eval_every", lo=1, integer=True)
  _number(cfg, "train.eval_batches", lo=1, integer=True)
  _number(cfg, "train.log_every", lo=1, integer=True)
  _number(cfg, "train.checkpoint_every", lo=1, integer=True)
  _number(cfg, "train.keep_checkpoints", lo=1, integer=True)
  _number(cfg, "train.compact_frozen", lo=0.0, hi=1.0)
  steps = t.checkpoint_steps
  _check(isinstance(steps, (list, tuple)) and all(
      isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= total for x in steps),
         "train.checkpoint_steps",
         f"must be a list of integers in [1, train.total_steps={total}], got {steps!r}")
  rungs = t.prune_steps
  _check(isinstance(rungs, (list, tuple)) and all(
      isinstance(x, int) and not isinstance(x, bool) and 1 <= x < total
      and x % t.eval_every == 0 for x in rungs), "train.prune_steps",
         f"must be a list of integers in [1, train.total_steps={total}) that are multiples of "
         f"train.eval_every={t.eval_every} (a rung ranks eval losses), got {rungs!r}")
  _number(cfg, "train.prune_keep", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
  over = t.prune_over
  allowed = [f for f in DYNAMIC_FIELDS if not f.endswith("seed")]
  _check(isinstance(over, (list, tuple)) and over and all(f in allowed for f in over),
         "train.prune_over", f"must be a non-empty list of per-variant (traced) fields, so a "
         f"comparison set lies in one compiled group; allowed: {', '.join(allowed)}; "
         f"got {over!r}")
  _number(cfg, "train.stall_margin", lo=0)
  _number(cfg, "train.target_eval_loss", lo=0)
  branch = _number(cfg, "train.branch_at", lo=0, hi=total - 1, integer=True)
  _check(not (branch and rungs), "train.branch_at", "cannot be combined with train.prune_steps "
         f"(a branch starts from its trunk at update {branch}; halve the trunk's grid instead)")
  _check(isinstance(t.divergence_bound, (int, float)) and t.divergence_bound > 0,
         "train.divergence_bound",
         f"must be a number > 0 (inf allowed), got {t.divergence_bound!r}")

  m = cfg.model
  _number(cfg, "model.vocab_size", lo=2, integer=True)
  d = _number(cfg, "model.d_model", lo=1, integer=True)
  _number(cfg, "model.num_layers", lo=1, integer=True)
  h = _number(cfg, "model.num_heads", lo=1, integer=True)
  _check(d % h == 0, "model.num_heads",
         f"must divide model.d_model ({d}), got {h}; allowed: "
         f"{', '.join(str(k) for k in range(1, d + 1) if d % k == 0)}")
  _number(cfg, "model.mlp_ratio", lo=0, lo_open=True)
  _choice(cfg, "model.block", BLOCKS)
  if m.block == "llama":
    even = [str(k) for k in range(1, d + 1) if d % k == 0 and d // k % 2 == 0]
    _check((d // h) % 2 == 0, "model.num_heads",
           f"with model.block='llama', the head dim d_model / num_heads must be even (rotary "
           f"embeddings rotate pairs of dims), got {d} / {h} = {d // h}; allowed: "
           f"{', '.join(even) or 'none (d_model is odd): make d_model even'}")
  _choice(cfg, "model.norm", NORMS)
  _check(isinstance(m.qk_norm, bool), "model.qk_norm", f"must be True or False, got {m.qk_norm!r}")
  _check(isinstance(m.tie_embeddings, bool), "model.tie_embeddings",
         f"must be True or False, got {m.tie_embeddings!r}")
  _number(cfg, "model.init_scale", lo=0, lo_open=True)
  _choice(cfg, "model.dtype", DTYPES)
  _choice(cfg, "model.attention", ATTENTIONS)
  _check(m.attention != "cudnn" or m.dtype == "bfloat16", "model.attention",
         "'cudnn' (flash attention) needs model.dtype='bfloat16'; allowed with float32: "
         "'einsum', 'xla'")
  _number(cfg, "model.z_loss", lo=0)

  dc = cfg.data
  _check(isinstance(dc.name, str) and dc.name, "data.name",
         f"must be one of {', '.join(BUILTIN_DATASETS)} or a TFDS catalog name, got {dc.name!r}")
  if dc.seed is not None:
    _number(cfg, "data.seed", lo=0, hi=MAX_SEED, integer=True)
  seq = _number(cfg, "data.seq_len", lo=2, integer=True)
  batch = _number(cfg, "data.batch_size", lo=1, integer=True)
  accum = _number(cfg, "train.grad_accum", lo=1, integer=True)
  _check(batch % accum == 0, "train.grad_accum",
         f"must divide data.batch_size ({batch}) into equal microbatches, got {accum}; "
         f"allowed: {', '.join(str(k) for k in range(1, batch + 1) if batch % k == 0)}")
  tok = dc.tokenizer
  bpe = tok.partition(":")[2] if isinstance(tok, str) and tok.startswith("bpe:") else None
  _check(isinstance(tok, str) and (tok == "bytes" or (bpe is not None and bpe.isdigit() and int(
      bpe) >= MIN_BPE_VOCAB) or (bpe is None and tok.endswith((".json", ".model")))),
         "data.tokenizer", f"unknown value {tok!r}; allowed: 'bytes', 'bpe:N' (a byte-level BPE "
         f"of N >= {MIN_BPE_VOCAB} tokens, trained on the train split), or the path of a HF "
         "tokenizer.json or SentencePiece .model")
  _check(tok == "bytes" or dc.name not in ("bytes", "synthetic"), "data.tokenizer",
         f"must be 'bytes' with data.name={dc.name!r}, got {tok!r}; for another tokenizer use "
         "data.name='text' (the files of data.corpus_dir), 'prose' or a TFDS catalog name")
  if bpe is not None:
    _check(m.vocab_size >= int(bpe), "model.vocab_size",
           f"must be >= the tokenizer's vocabulary ({int(bpe)} tokens, data.tokenizer={tok!r}), "
           f"got {m.vocab_size}; set model.vocab_size={int(bpe)}")
  windows = dc.name in ("bytes", "prose", "text") or tok != "bytes"   # records of 1025 tokens
  if windows and dc.name != "synthetic":
    _check(seq <= MAX_BYTES_SEQ_LEN, "data.seq_len",
           f"must be <= {MAX_BYTES_SEQ_LEN} for data.name={dc.name!r} with "
           f"data.tokenizer={tok!r}, got {seq}")
  if dc.name in ("bytes", "prose", "text") and tok == "bytes":
    _check(m.vocab_size >= 256, "model.vocab_size",
           f"must be >= 256 for byte-level data, got {m.vocab_size}")

  s = cfg.schedule
  _choice(cfg, "schedule.warmup_shape", schedules.WARMUP_SHAPES)
  _choice(cfg, "schedule.decay_shape", schedules.DECAY_SHAPES)
  _choice(cfg, "schedule.cooldown_shape", schedules.COOLDOWN_SHAPES)
  durations(cfg)  # checks warmup_steps / warmup_ratio / cooldown_*
  _number(cfg, "schedule.warmup_init_frac", lo=0, hi=1)
  _number(cfg, "schedule.warmup_exp_start", lo=0, hi=1, lo_open=True)
  _number(cfg, "schedule.warmup_power", lo=0, lo_open=True)
  _number(cfg, "schedule.final_frac", lo=0, hi=1)
  if s.decay_shape == "exponential":
    _check(s.final_frac > 0, "schedule.final_frac",
           "must be > 0 with decay_shape='exponential' (it decays geometrically to it)")
  _number(cfg, "schedule.rsqrt_timescale", lo=0)

  o = cfg.optimizer
  _choice(cfg, "optimizer.name", OPTIMIZERS)
  _number(cfg, "optimizer.peak_lr", lo=0, lo_open=True)
  _number(cfg, "optimizer.b1", lo=0, hi=1, hi_open=True)
  _number(cfg, "optimizer.b2", lo=0, hi=1, hi_open=True)
  _number(cfg, "optimizer.eps", lo=0)
  _number(cfg, "optimizer.weight_decay", lo=0)
  _number(cfg, "optimizer.momentum", lo=0, hi=1, hi_open=True)
  _check(isinstance(o.nesterov, bool), "optimizer.nesterov",
         f"must be True or False, got {o.nesterov!r}")
  _number(cfg, "optimizer.clip_norm", lo=0)
  for group in ("embed", "matrices", "head", "norms"):
    _number(cfg, f"optimizer.lr_mult_{group}", lo=0, lo_open=True)
  _check(o.lr_mult_head == 1.0 or not cfg.model.tie_embeddings, "optimizer.lr_mult_head",
         "must stay 1.0 with model.tie_embeddings=True (the head is the embedding: set "
         f"optimizer.lr_mult_embed), got {o.lr_mult_head!r}")
  defaults = default_config().optimizer
  for key in UNUSED_BY.get(o.name, ()):
    _check(o[key] == defaults[key], f"optimizer.{key}",
           f"is not used by optimizer.name={o.name!r} (see optimizers.py), so it must stay at "
           f"its default {defaults[key]!r}, got {o[key]!r}")
  _hp_schedules(cfg)
  if o.name == "schedule_free_adamw":
    _check(o.b1 > 0, "optimizer.b1", "must be > 0 with optimizer.name='schedule_free_adamw' "
           f"(its eval point is (y - (1 - b1) z) / b1), got {o.b1!r}")
  _number(cfg, "mesh.variant", lo=0, integer=True)
  _number(cfg, "mesh.data", lo=0, integer=True)
  _choice(cfg, "mesh.variant_loop", VARIANT_LOOPS)
  del total


def _hp_schedules(cfg) -> None:
  """Checks the hyperparameter schedules (optimizer.H_start ... H_cooldown_steps)."""
  o = cfg.optimizer
  _check(isinstance(o.weight_decay_tied, bool), "optimizer.weight_decay_tied",
         f"must be True or False, got {o.weight_decay_tied!r}")
  _check(o.weight_decay_tied or o.name not in ("adam", "schedule_free_adamw"),
         "optimizer.weight_decay_tied", f"must stay True with optimizer.name={o.name!r} "
         "(it has no independent weight decay: adam none, schedule-free's is at y)")
  for h in HP_SCHEDULED:
    reads = SCHEDULABLE[o.name]
    for key in ("start", "end"):
      value = o[f"{h}_{key}"]
      if value is None:
        continue
      _check(h in reads, f"optimizer.{h}_{key}",
             f"is not read by optimizer.name={o.name!r}, so it cannot be scheduled; allowed "
             f"for {o.name!r}: {', '.join(f'{r}_start, {r}_end' for r in reads)}")
      if h == "weight_decay":
        _number(cfg, f"optimizer.{h}_{key}", lo=0)
      else:
        _number(cfg, f"optimizer.{h}_{key}", lo=0, hi=1, hi_open=True)
    for phase, key in (("warmup", "start"), ("cooldown", "end")):
      steps = hp_duration(cfg, h, phase)
      _check(steps == 0 or o[f"{h}_{key}"] is not None, f"optimizer.{h}_{phase}_steps",
             f"is {steps}, but optimizer.{h}_{key} is None: set the value the {phase} "
             f"{'starts from' if phase == 'warmup' else 'ends at'}, or make it 0")


def hp_duration(cfg, h: str, phase: str) -> int:
  """optimizer.{h}_{phase}_steps, through the one converter (it checks the range)."""
  return schedules.steps_from_duration(
      total_steps=cfg.train.total_steps, steps=cfg.optimizer[f"{h}_{phase}_steps"],
      field=f"config.optimizer.{h}_{phase}")


def ramps(cfg) -> dict:
  """The traced numbers of each hyperparameter's schedule (optimizers.make_hparams):
  a value None (no warmup or cooldown) is the hyperparameter's own."""
  o = cfg.optimizer
  own = lambda h, key: o[h] if o[f"{h}_{key}"] is None else o[f"{h}_{key}"]  # noqa: E731
  return {h: dict(start=own(h, "start"), warmup_steps=hp_duration(cfg, h, "warmup"),
                  end=own(h, "end"), cooldown_steps=hp_duration(cfg, h, "cooldown"))
          for h in HP_SCHEDULED}


def scheduled(cfg) -> tuple[str, ...]:
  """The hyperparameters that vary over a (validated) run: its metrics rows log them."""
  o = cfg.optimizer
  return tuple(h for h in HP_SCHEDULED
               if (o[f"{h}_start"] is not None and o[f"{h}_warmup_steps"] > 0)
               or (o[f"{h}_end"] is not None and o[f"{h}_cooldown_steps"] > 0))


def durations(cfg) -> tuple[int, int]:
  """(warmup_steps, cooldown_steps) of a config, through the one converter."""
  s, total = cfg.schedule, cfg.train.total_steps
  warmup = schedules.steps_from_duration(
      total_steps=total, steps=s.warmup_steps, ratio=s.warmup_ratio,
      field="config.schedule.warmup")
  cooldown = schedules.steps_from_duration(
      total_steps=total, steps=s.cooldown_steps, ratio=s.cooldown_ratio,
      field="config.schedule.cooldown")
  return warmup, cooldown
