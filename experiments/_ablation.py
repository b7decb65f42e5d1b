"""What the ablations share: the model, data and train sizes at CPU and GPU
scale, and the seeds (paired replicates: seed i of every condition has the
same init and data order). Experiment files import it relatively (`from ._ablation import
ablation_scale`); the config loader makes that work wherever they live."""
from warmup_research import config as config_lib

SEEDS = [0, 1, 2, 3, 4]


def seeds(n: int, first: int = 0) -> list[int]:
  """n paired seeds from `first`. An experiment whose design was read off
  another's runs takes a `first` of its own, so its runs are fresh (never
  bit-identical to the runs that chose it)."""
  return list(range(first, first + n))


def ablation_scale(c, arg=None, *, steps: int, gpu_steps: int):
  """The model/data/train sizes the ablations share: CPU scale (d_model 64,
  6 layers, seq 64, batch 16) or, with arg 'gpu', d_model 512, 8 layers, seq
  256, batch 64. Adam-style optimizer with no weight decay or clipping."""
  if arg == "gpu":
    c.model.d_model, c.model.num_layers, c.model.num_heads = 512, 8, 8
    c.data.seq_len, c.data.batch_size = 256, 64
    c.train.total_steps, c.train.eval_every, c.train.checkpoint_every = gpu_steps, 250, 500
  else:
    c.model.d_model, c.model.num_layers, c.model.num_heads = 64, 6, 4
    c.data.seq_len, c.data.batch_size = 64, 16
    c.train.total_steps, c.train.eval_every, c.train.checkpoint_every = steps, 50, 100
  c.train.eval_batches = 32       # fixed validation batches: resolves 0.01-nat differences
  c.train.log_every = 10
  c.optimizer.clip_norm = 0.0
  c.optimizer.weight_decay = 0.0
  c.schedule.warmup_shape = "linear"
  c.schedule.decay_shape = "cosine"
  return c


def adam_scale(arg=None, *, steps: int, gpu_steps: int):
  """`ablation_scale` with Adam (b2 0.95) and, at CPU scale, 4 layers instead
  of 6: the model of the grids of hundreds of runs (or of `analyze`'s
  thousands of checkpoints) that must fit their time on 2 cores."""
  c = ablation_scale(config_lib.default_config(), arg, steps=steps, gpu_steps=gpu_steps)
  if arg != "gpu":
    c.model.num_layers = 4
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  return c
