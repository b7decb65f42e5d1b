"""Makes `schedule_free_reference.json`: steps of the reference schedule-free
AdamW (`schedulefree.AdamWScheduleFree`, Defazio et al. 2024) on a tiny
least-squares problem, the values `schedule_free_adamw` is tested against.

It needs torch and schedulefree, which the project does not depend on, so it
is run once, by hand, in a separate environment:

    python3 -m venv /tmp/sf-venv
    /tmp/sf-venv/bin/pip install schedulefree torch numpy
    /tmp/sf-venv/bin/python tests/data/make_schedule_free_reference.py

The reference's options are set so that it computes our algorithm:
`warmup_steps=0` with the LR of update t written into the param group before
the t-th `step()` (our schedule's value, a linear warmup from 0 here; its own
warmup would start at lr / W instead), `r=0` and `weight_lr_power=2` (its
defaults), the weight decay in a param group of the matrix alone (we decay
matrices only), and the gradient clipped by global norm by hand before each
step (the reference has no clipping). Everything runs in float64; x (what
evaluations see) is read through the reference's own `eval()` / `train()`.
"""
import importlib.metadata
import json
import pathlib

import numpy as np
import schedulefree
import torch

# Each case: the optimizer's numbers and its LR per update.
CASES = [
    dict(name="warmup_wd_clip", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1, clip_norm=1.0,
         peak_lr=0.05, warmup_steps=3, steps=8),
    dict(name="b1_half_no_warmup", b1=0.5, b2=0.95, eps=1e-6, weight_decay=0.0, clip_norm=0.0,
         peak_lr=0.02, warmup_steps=0, steps=8),
]


def problem():
  """loss(W, b) = mean((X W + b - T)^2): X [8, 4], T [8, 3], W [4, 3], b [3]."""
  rng = np.random.default_rng(0)
  return dict(X=rng.normal(size=(8, 4)), T=rng.normal(size=(8, 3)),
              W=rng.normal(size=(4, 3)) * 0.5, b=rng.normal(size=(3,)) * 0.1)


def lr_at(case, t):
  """Linear warmup from 0 over warmup_steps updates, then constant (update t, 0-based)."""
  w = case["warmup_steps"]
  return case["peak_lr"] * (t / w if t < w else 1.0)


def run(case, data):
  X, T = (torch.tensor(data[k], dtype=torch.float64) for k in ("X", "T"))
  W = torch.nn.Parameter(torch.tensor(data["W"], dtype=torch.float64))
  b = torch.nn.Parameter(torch.tensor(data["b"], dtype=torch.float64))
  opt = schedulefree.AdamWScheduleFree(
      [dict(params=[W], weight_decay=case["weight_decay"]), dict(params=[b], weight_decay=0.0)],
      lr=case["peak_lr"], betas=(case["b1"], case["b2"]), eps=case["eps"], warmup_steps=0,
      r=0.0, weight_lr_power=2.0)
  opt.train()
  steps = []
  for t in range(case["steps"]):
    for group in opt.param_groups:
      group["lr"] = lr_at(case, t)
    opt.zero_grad()
    loss = torch.mean((X @ W + b - T) ** 2)
    loss.backward()
    if case["clip_norm"] > 0:
      norm = torch.sqrt(W.grad.pow(2).sum() + b.grad.pow(2).sum())
      scale = min(1.0, case["clip_norm"] / float(norm))
      W.grad.mul_(scale)
      b.grad.mul_(scale)
    opt.step()
    y = dict(W=W.detach().numpy().tolist(), b=b.detach().numpy().tolist())
    opt.eval()
    x = dict(W=W.detach().numpy().tolist(), b=b.detach().numpy().tolist())
    opt.train()
    steps.append(dict(lr=lr_at(case, t), loss_at_y=float(loss.detach()), y=y, x=x))
  return steps


def main():
  data = problem()
  cases = [dict(case, updates=run(case, data)) for case in CASES]
  out = dict(schedulefree=importlib.metadata.version("schedulefree"), torch=torch.__version__,
             problem={k: v.tolist() for k, v in data.items()}, cases=cases)
  path = pathlib.Path(__file__).with_name("schedule_free_reference.json")
  path.write_text(json.dumps(out))
  print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
  main()
