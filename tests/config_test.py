"""Config: loading, overrides, and one clear error per bad value."""
import pytest
from helpers import REPO, tiny_config

from warmup_research import config as config_lib
from warmup_research.errors import ConfigError

BAD = [
    ({"schedule.warmup_steps": 21}, r"config.schedule.warmup_steps: must be <= train.total_steps \(20\)"),
    ({"schedule.warmup_steps": None, "schedule.warmup_ratio": 1.5},
     r"config.schedule.warmup_ratio: must be a number in \[0, 1\]"),
    ({"schedule.warmup_steps": None, "schedule.warmup_ratio": -0.1},
     r"config.schedule.warmup_ratio: must be a number in \[0, 1\]"),
    ({"schedule.warmup_ratio": 0.1}, "give config.schedule.warmup_steps or .*_ratio, not both"),
    ({"optimizer.peak_lr": 0.0}, "config.optimizer.peak_lr: must be a number > 0"),
    ({"optimizer.peak_lr": -1e-3}, "config.optimizer.peak_lr: must be a number > 0"),
    ({"schedule.warmup_shape": "zigzag"},
     "config.schedule.warmup_shape: unknown value 'zigzag'; allowed: none, linear"),
    ({"schedule.decay_shape": "step"}, "config.schedule.decay_shape: unknown value 'step'"),
    ({"optimizer.name": "adagrad"},
     "config.optimizer.name: unknown value 'adagrad'; allowed: adamw, adam, sgd, radam, lion"),
    ({"model.num_heads": 3}, r"config.model.num_heads: must divide model.d_model \(32\)"),
    ({"model.norm": "sandwich"}, "config.model.norm: unknown value 'sandwich'; allowed: pre, post"),
    ({"optimizer.b2": 1.0}, "config.optimizer.b2: must be a number >= 0 and < 1"),
    ({"train.total_steps": 0}, "config.train.total_steps: must be an integer >= 1"),
    ({"data.name": "bytes", "data.seq_len": 2048}, "config.data.seq_len: must be <= 1024"),
    ({"schedule.decay_shape": "exponential", "schedule.final_frac": 0.0},
     "config.schedule.final_frac: must be > 0 with decay_shape='exponential'"),
    ({"model.block": "gpt3"}, "config.model.block: unknown value 'gpt3'; allowed: gpt2, llama$"),
    ({"model.block": "llama", "model.num_heads": 32},
     r"config.model.num_heads: with model.block='llama', the head dim d_model / num_heads must "
     r"be even .*, got 32 / 32 = 1; allowed: 1, 2, 4, 8, 16$"),
    ({"train.grad_accum": 3}, r"config.train.grad_accum: must divide data.batch_size \(4\) into "
     "equal microbatches, got 3; allowed: 1, 2, 4$"),
    ({"train.grad_accum": 0}, "config.train.grad_accum: must be an integer >= 1, got 0"),
    ({"model.attention": "flash"},
     "config.model.attention: unknown value 'flash'; allowed: einsum, xla, cudnn"),
    ({"model.attention": "cudnn"}, "config.model.attention: 'cudnn' .* needs model.dtype='bfloat16'"),
    ({"data.name": "text", "data.tokenizer": "words"},
     r"config.data.tokenizer: unknown value 'words'; allowed: 'bytes', 'bpe:N' \(a byte-level BPE "
     r"of N >= 257 tokens"),
    ({"data.name": "text", "data.tokenizer": "bpe:100"}, "config.data.tokenizer: unknown value"),
    ({"data.name": "prose", "data.tokenizer": "bpe:4096"},
     r"config.model.vocab_size: must be >= the tokenizer's vocabulary \(4096 tokens, "
     r"data.tokenizer='bpe:4096'\), got 256; set model.vocab_size=4096$"),
    ({"data.name": "bytes", "data.tokenizer": "bpe:300", "model.vocab_size": 300},
     "config.data.tokenizer: must be 'bytes' with data.name='bytes', got 'bpe:300'; for another "
     "tokenizer use data.name='text'"),
    ({"data.name": "text", "data.seq_len": 1025}, "config.data.seq_len: must be <= 1024"),
    ({"data.name": "lm1b", "data.tokenizer": "bpe:300", "model.vocab_size": 300,
      "data.seq_len": 2048}, "config.data.seq_len: must be <= 1024"),
    ({"optimizer.name": "schedule_free_adamw", "optimizer.momentum": 0.5},
     r"config.optimizer.momentum: is not used by optimizer.name='schedule_free_adamw' "
     r"\(see optimizers.py\), so it must stay at its default 0.9, got 0.5$"),
    ({"optimizer.name": "adamw_normalized", "optimizer.momentum": 0.95},
     "config.optimizer.momentum: is not used by optimizer.name='adamw_normalized'"),
    ({"optimizer.name": "muon", "optimizer.nesterov": True},
     "config.optimizer.nesterov: is not used by optimizer.name='muon'"),
    ({"optimizer.name": "schedule_free_adamw", "optimizer.b1": 0.0},
     r"config.optimizer.b1: must be > 0 with optimizer.name='schedule_free_adamw'"),
    ({"optimizer.lr_mult_embed": 0.0}, "config.optimizer.lr_mult_embed: must be a number > 0"),
    ({"optimizer.lr_mult_head": 2.0},
     "config.optimizer.lr_mult_head: must stay 1.0 with model.tie_embeddings=True"),
    ({"train.target_eval_loss": -1.0}, "config.train.target_eval_loss: must be a number >= 0"),
    ({"train.checkpoint_steps": [5, 21]},
     r"config.train.checkpoint_steps: must be a list of integers in \[1, train.total_steps=20\]"),
    # hyperparameter schedules: a family that does not read H, out of range, too long
    ({"optimizer.name": "sgd", "optimizer.b2_start": 0.9, "optimizer.b2_warmup_steps": 5},
     r"config.optimizer.b2_start: is not read by optimizer.name='sgd', so it cannot be "
     r"scheduled; allowed for 'sgd': momentum_start, momentum_end, weight_decay_start, "
     r"weight_decay_end$"),
    ({"optimizer.momentum_end": 0.5, "optimizer.momentum_cooldown_steps": 5},
     "config.optimizer.momentum_end: is not read by optimizer.name='adamw'"),
    ({"optimizer.name": "adam", "optimizer.weight_decay_start": 0.0,
      "optimizer.weight_decay_warmup_steps": 5},
     "config.optimizer.weight_decay_start: is not read by optimizer.name='adam'"),
    ({"optimizer.name": "schedule_free_adamw", "optimizer.b1_start": 0.5,
      "optimizer.b1_warmup_steps": 5},
     "config.optimizer.b1_start: is not read by optimizer.name='schedule_free_adamw'"),
    ({"optimizer.name": "adam", "optimizer.weight_decay_tied": False},
     "config.optimizer.weight_decay_tied: must stay True with optimizer.name='adam'"),
    ({"optimizer.name": "schedule_free_adamw", "optimizer.weight_decay_tied": False},
     "config.optimizer.weight_decay_tied: must stay True with optimizer.name="
     "'schedule_free_adamw'"),
    ({"optimizer.b1_start": 1.0, "optimizer.b1_warmup_steps": 5},
     "config.optimizer.b1_start: must be a number >= 0 and < 1, got 1.0$"),
    ({"optimizer.name": "muon", "optimizer.momentum_end": -0.1,
      "optimizer.momentum_cooldown_steps": 5},
     "config.optimizer.momentum_end: must be a number >= 0 and < 1, got -0.1$"),
    ({"optimizer.weight_decay_start": -1.0, "optimizer.weight_decay_warmup_steps": 5},
     "config.optimizer.weight_decay_start: must be a number >= 0, got -1.0$"),
    ({"optimizer.b2_start": 0.5, "optimizer.b2_warmup_steps": 21},
     r"config.optimizer.b2_warmup_steps: must be <= train.total_steps \(20\), got 21$"),
    ({"optimizer.b2_end": 0.5, "optimizer.b2_cooldown_steps": -1},
     "config.optimizer.b2_cooldown_steps: must be an integer >= 0, got -1$"),
    ({"optimizer.b1_warmup_steps": 5},
     "config.optimizer.b1_warmup_steps: is 5, but optimizer.b1_start is None: set the value "
     "the warmup starts from, or make it 0$"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=lambda x: str(x)[:40])
def test_bad_values_name_the_field(overrides, message):
  with pytest.raises(ConfigError, match=message):
    tiny_config(**overrides)


@pytest.mark.parametrize("name", ["muon", "adamw_normalized", "schedule_free_adamw"])
def test_new_optimizers_validate_with_the_fields_they_use(name):
  cfg = tiny_config(**{"optimizer.name": name, "optimizer.b1": 0.8, "optimizer.b2": 0.99,
                       "optimizer.weight_decay": 0.0, "optimizer.clip_norm": 0.0})
  assert cfg.optimizer.name == name
  if name == "muon":   # muon's matrices use the momentum
    assert tiny_config(**{"optimizer.name": name, "optimizer.momentum": 0.95})


def test_overrides_are_typed_and_unknown_keys_fail():
  cfg = config_lib.default_config()
  out = config_lib.apply_overrides(cfg, {"optimizer.peak_lr": "3e-3", "schedule.warmup_steps": "7",
                                         "model.norm": "post", "model.qk_norm": "True",
                                         "optimizer.b1": "1"})
  assert out.optimizer.peak_lr == 3e-3 and out.schedule.warmup_steps == 7
  assert out.model.norm == "post" and out.model.qk_norm is True and out.optimizer.b1 == 1.0
  assert cfg.optimizer.peak_lr == 1e-3, "overrides must not change the input config"
  with pytest.raises(ConfigError, match="config.optimizer.peak_rate: no such field; fields here"):
    config_lib.apply_overrides(cfg, {"optimizer.peak_rate": "1"})
  with pytest.raises(ConfigError, match="config.optimiser.peak_lr: no such field 'optimiser'"):
    config_lib.apply_overrides(cfg, {"optimiser.peak_lr": "1"})
  with pytest.raises(ConfigError, match="config.optimizer.peak_lr: wrong type"):
    config_lib.apply_overrides(cfg, {"optimizer.peak_lr": "fast"})
  with pytest.raises(ConfigError, match="config.schedule.warmup_steps: wrong type"):
    config_lib.apply_overrides(cfg, {"schedule.warmup_steps": "0.5"})


def test_loading_experiment_files(tmp_path):
  cfg = config_lib.load(str(REPO / "experiments" / "quickstart.py"))
  config_lib.validate(cfg)
  with pytest.raises(ConfigError, match="--config: no such config file"):
    config_lib.load(str(tmp_path / "missing.py"))
  (tmp_path / "noget.py").write_text("x = 1\n")
  with pytest.raises(ConfigError, match="--config: .* has no get_config"):
    config_lib.load(str(tmp_path / "noget.py"))


def test_static_signature_ignores_dynamic_fields():
  a = tiny_config()
  b = tiny_config(**{"optimizer.peak_lr": 5e-3, "seed": 3, "schedule.warmup_shape": "cosine",
                     "optimizer.lr_mult_embed": 10.0, "optimizer.lr_mult_norms": 0.1})
  c = tiny_config(**{"model.norm": "post"})
  assert config_lib.static_signature(a) == config_lib.static_signature(b)
  assert config_lib.static_signature(a) != config_lib.static_signature(c)
  # the tokenizer changes the token streams and the vocabulary: a program of its own
  d = tiny_config(**{"data.name": "text", "data.tokenizer": "bpe:300", "model.vocab_size": 300})
  e = tiny_config(**{"data.name": "text", "data.tokenizer": "bpe:300", "model.vocab_size": 300,
                     "data.seed": 4})
  assert config_lib.static_signature(d) == config_lib.static_signature(e)
  assert config_lib.static_signature(d) != config_lib.static_signature(
      tiny_config(**{"data.name": "text", "data.tokenizer": "bpe:280", "model.vocab_size": 300}))
  tiny_config(**{"data.name": "lm1b", "data.seq_len": 2048})   # packed bytes: no record bound


def test_a_grid_over_hyperparameter_schedules_is_one_compile_group():
  plain = tiny_config(**{"optimizer.name": "muon"})
  grid = [tiny_config(**{"optimizer.name": "muon", "optimizer.momentum": 0.95,
                         "optimizer.momentum_start": start, "optimizer.momentum_warmup_steps": w,
                         "optimizer.b2_end": 0.9, "optimizer.b2_cooldown_steps": w,
                         "optimizer.weight_decay_start": 0.0,
                         "optimizer.weight_decay_warmup_steps": w,
                         "optimizer.weight_decay_tied": tied})
          for start, w, tied in ((0.85, 10, True), (0.5, 3, False), (0.0, 0, True))]
  assert {config_lib.static_signature(c) for c in grid} == {config_lib.static_signature(plain)}
  assert config_lib.scheduled(plain) == () and config_lib.scheduled(grid[2]) == ()
  assert config_lib.scheduled(grid[0]) == ("b2", "momentum", "weight_decay")
  assert config_lib.ramps(grid[0])["momentum"] == dict(start=0.85, warmup_steps=10, end=0.95,
                                                       cooldown_steps=0)
  assert config_lib.ramps(plain)["b1"] == dict(start=0.9, warmup_steps=0, end=0.9,
                                               cooldown_steps=0)


def test_hyperparameter_schedule_fields_are_added_at_no_schedule():
  # a saved config without them means no schedule, and its record hash is unchanged
  saved = config_lib.default_config().to_dict()
  for f in (*config_lib.HP_SCHEDULE_FIELDS, "optimizer.weight_decay_tied"):
    del saved["optimizer"][f.split(".")[1]]
  old = config_lib.from_saved(saved)
  assert old.to_dict() == config_lib.default_config().to_dict()
  kept = config_lib.canonical(config_lib.default_config().to_dict())["optimizer"]
  assert not {f.split(".")[1] for f in config_lib.HP_SCHEDULE_FIELDS} & set(kept)
  assert "weight_decay_tied" not in kept
  assert set(config_lib.HP_SCHEDULE_FIELDS) <= set(config_lib.DYNAMIC_FIELDS)


def test_from_saved_fills_fields_a_saved_config_predates():
  saved = config_lib.default_config().to_dict()
  assert config_lib.from_saved(saved).model.attention == "einsum"  # kept as saved
  del saved["model"]["attention"]
  assert config_lib.from_saved(saved).model.attention == "xla"  # the code that saved it
  del saved["model"]["block"], saved["train"]["grad_accum"]
  old = config_lib.from_saved(saved)
  assert (old.model.block, old.train.grad_accum) == ("gpt2", 1)


def _experiment(tmp_path, body, name="exp.py"):
  path = tmp_path / name
  path.write_text("from warmup_research import config as config_lib\n" + body)
  return str(path)


@pytest.mark.parametrize("body,spec_arg,message", [
    ("def get_config():\n  c = config_lib.default_config()\n  c.optimizer.peak_lrr = 5.0\n"
     "  return c\n", "", "config.optimizer.peak_lrr: set by .* but no such field; fields here: "
     "b1, b1_cooldown_steps, b1_end"),
    ("def get_config():\n  raise RuntimeError('boom')\n", "",
     r"--config: .*get_config\(\) raised RuntimeError: boom"),
    ("def get_config():\n  return config_lib.default_config()\n", ":gpu",
     r"get_config\(\) takes no argument, so ':gpu' cannot be passed"),
    ("def get_config():\n  return {}\n", "", r"must return a ConfigDict, got dict"),
])
def test_experiment_files_that_fail_are_one_clear_error(tmp_path, body, spec_arg, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.load(_experiment(tmp_path, body) + spec_arg)


def test_a_file_that_is_not_an_experiment_is_refused():
  with pytest.raises(ConfigError, match="--config: /etc/hostname is not an experiment file"):
    config_lib.load("/etc/hostname")


def test_integral_floats_are_ints_and_ints_are_floats_where_the_schema_says():
  c = config_lib.apply_overrides(tiny_config(), {"model.vocab_size": "1e3",
                                                 "train.total_steps": "30.0",
                                                 "model.mlp_ratio": "2.5"})
  assert c.model.vocab_size == 1000 and isinstance(c.model.vocab_size, int)
  assert c.train.total_steps == 30 and c.model.mlp_ratio == 2.5
  with pytest.raises(ConfigError, match="config.model.vocab_size: wrong type"):
    config_lib.apply_overrides(tiny_config(), {"model.vocab_size": "300.5"})


@pytest.mark.parametrize("field,value", [("seed", 2**32), ("data.seed", 2**64),
                                         ("train.total_steps", 2**31)])
def test_values_beyond_the_dtypes_are_refused(field, value):
  with pytest.raises(ConfigError, match=f"config.{field}: must be an integer >= "):
    config_lib.validate(config_lib.apply_overrides(tiny_config(), {field: value}))


@pytest.mark.parametrize("body,load,message", [
    ("import sys\nsys.exit(0)\n", config_lib.load, r"exp.py: called sys.exit\(0\) at import"),
    ("def get_config():\n  raise SystemExit\n", config_lib.load,
     r"exp.py: get_config\(\) called sys.exit\(\); it must return its value"),
    ("def get_config():\n  return config_lib.default_config()\n"
     "def get_sweep():\n  import sys\n  sys.exit('done')\n", config_lib.load_sweep,
     r"exp.py: get_sweep\(\) called sys.exit\('done'\)"),
], ids=["at-import", "in-get_config", "in-get_sweep"])
def test_an_experiment_file_that_exits_is_an_error_not_an_exit(tmp_path, body, load, message):
  # Issue 30: SystemExit went through every `except Exception`, so `sweep`
  # exited 0 having done nothing.
  with pytest.raises(ConfigError, match=f"--config: .*{message}"):
    load(_experiment(tmp_path, body))
