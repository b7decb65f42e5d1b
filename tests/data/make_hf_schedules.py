"""Makes `hf_schedules.json`: learning rates from HF `transformers` schedulers.

The fixture the peer-exact presets of `warmup_research.schedules` are tested
against. It needs torch and transformers, which the project does not depend on,
so it is run once, by hand, in a separate environment:

    python3 -m venv /tmp/hfvenv
    /tmp/hfvenv/bin/pip install torch==2.13.0 transformers==5.23.0
    /tmp/hfvenv/bin/python tests/data/make_hf_schedules.py

The LR recorded for step s is the one the optimizer uses for its (s+1)-th update
(`param_groups[0]["lr"]` read just before the s-th `optimizer.step()`), i.e.
step 0 is the first update, as in `warmup_research.schedules`.
"""
import json
import math
import pathlib
import types

import torch
import transformers
from transformers import optimization as hf
from transformers.training_args import TrainingArguments

PEAK_LR = 1e-3
CASES = [(100, 0), (100, 10), (100, 100), (37, 5), (1000, 60), (10, 1), (50, 49)]


def lrs(make, total):
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=PEAK_LR)
  sched = make(opt)
  out = []
  for _ in range(total + 1):
    out.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
  return out


def main():
  rows = []
  for total, warmup in CASES:
    def add(name, kw, make):
      rows.append(dict(name=name, total_steps=total, warmup_steps=warmup, kw=kw,
                       lr=lrs(make, total)))
    add("hf_constant", {}, lambda o: hf.get_constant_schedule_with_warmup(o, warmup))
    add("hf_linear", {}, lambda o: hf.get_linear_schedule_with_warmup(o, warmup, total))
    for cycles in (0.5, 1.5):
      add("hf_cosine", {"num_cycles": cycles},
          lambda o: hf.get_cosine_schedule_with_warmup(o, warmup, total, num_cycles=cycles))
    if warmup < total:  # HF divides by (total - warmup) here.
      for lr_end, power in ((1e-7, 1.0), (1e-4, 2.0)):
        add("hf_polynomial", {"lr_end": lr_end, "power": power},
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, warmup, total, lr_end=lr_end, power=power))
    for timescale in (None, 50):
      add("hf_inverse_sqrt", {} if timescale is None else {"timescale": timescale},
          lambda o: hf.get_inverse_sqrt_schedule(o, warmup, timescale=timescale))
  ratios = []
  for total in (1, 7, 10, 37, 100, 1000, 12345):
    for ratio in (0.0, 0.01, 0.05, 0.1, 0.3, 0.333, 0.5, 0.99):
      fake_args = types.SimpleNamespace(warmup_steps=ratio)
      steps = TrainingArguments.get_warmup_steps(fake_args, total)
      assert steps == math.ceil(total * ratio)
      ratios.append(dict(ratio=ratio, total_steps=total, warmup_steps=steps))
  out = dict(transformers=transformers.__version__, torch=torch.__version__,
             peak_lr=PEAK_LR, schedules=rows, warmup_ratio=ratios)
  path = pathlib.Path(__file__).with_name("hf_schedules.json")
  path.write_text(json.dumps(out))
  print(f"wrote {len(rows)} schedules, {len(ratios)} ratio cases to {path}")


if __name__ == "__main__":
  main()
