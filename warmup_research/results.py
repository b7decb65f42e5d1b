"""Tables and plots."""
from __future__ import annotations

import pathlib

import numpy as np

from warmup_research import schedules


def plot_schedules(out_path, *, total_steps: int = 1000, warmup_steps: int = 200) -> None:
  """Every warmup shape, decay shape and WSD cooldown shape, one panel each."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  steps = np.arange(total_steps + 1)
  base = dict(peak_lr=1.0, total_steps=total_steps, warmup_steps=warmup_steps,
              final_frac=0.1, cooldown_steps=total_steps // 5)
  panels = [
      ("warmup shapes (decay: constant)", "warmup_shape", schedules.WARMUP_SHAPES,
       dict(decay_shape="constant")),
      ("decay shapes (warmup: linear)", "decay_shape", schedules.DECAY_SHAPES, {}),
      ("WSD cooldown shapes (last 20%)", "cooldown_shape", schedules.COOLDOWN_SHAPES,
       dict(decay_shape="wsd")),
  ]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, (title, field, names, extra) in zip(axes, panels):
    for name in names:
      hp = schedules.make_hparams(**{**base, **extra, field: name})
      ax.plot(steps, np.asarray(schedules.schedule(steps, hp)), label=name)
    ax.axvline(warmup_steps, color="gray", lw=0.5, ls=":")
    ax.set(title=title, xlabel="step (0 = first update)", ylabel="lr / peak_lr")
    ax.legend(fontsize=8)
  fig.suptitle(f"warmup_research.schedules: total_steps={total_steps}, "
               f"warmup_steps={warmup_steps}, final_frac=0.1")
  fig.tight_layout()
  pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=110)
  plt.close(fig)
