"""Every figure: a sweep's curves, schedules and loss vs peak LR; sharpness
over checkpoints; every schedule shape.

Figures are drawn with matplotlib's object API (`Figure`, no pyplot), so
importing this module never changes a notebook's backend.
"""
from __future__ import annotations

import pathlib

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from warmup_research import config as config_lib
from warmup_research import schedules, train


def _subplots(figsize, nrows: int = 1, ncols: int = 1, **kw):
  fig = Figure(figsize=figsize)
  return fig, fig.subplots(nrows, ncols, **kw)


def _save(fig, path: pathlib.Path, dpi: int = 100, rect=(0, 0, 1, 1)) -> pathlib.Path:
  """Lays out (tight, inside `rect`, unless the figure has constrained
  layout: figures with a legend outside the axes) and writes."""
  if fig.get_layout_engine() is None:
    fig.tight_layout(rect=rect)
  fig.savefig(path, dpi=dpi)
  return path


LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def _conditions(swept, rows) -> tuple[list[str], dict]:
  """The non-seed swept fields, and each run's condition (a tuple of values)."""
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  return keys, {r["run_id"]: tuple(r[f] for f in keys) for r in rows}


def _style(conditions: list[tuple]) -> dict:
  """Up to 10 conditions: a colour each. More: colour by the first swept
  axis, line style (and marker) by the others, so any number stays readable."""
  if len(conditions) <= 10:
    cmap = matplotlib.colormaps["tab10"]
    return {c: dict(color=cmap(i), ls="-", marker="o") for i, c in enumerate(conditions)}
  firsts = list(dict.fromkeys(c[:1] for c in conditions))
  rests = list(dict.fromkeys(c[1:] for c in conditions))
  cmap = matplotlib.colormaps["tab10" if len(firsts) <= 10 else "viridis"]
  color = {f: cmap(i if len(firsts) <= 10 else i / max(len(firsts) - 1, 1))
           for i, f in enumerate(firsts)}
  return {c: dict(color=color[c[:1]], ls=LINESTYLES[rests.index(c[1:]) % len(LINESTYLES)],
                  marker=MARKERS[rests.index(c[1:]) // len(LINESTYLES) % len(MARKERS)])
          for c in conditions}


def _label(keys, condition) -> str:
  return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, condition)) or "all runs"


def _legend(fig, ax, title: str = "") -> None:
  """One legend, outside the axes, whatever the number of entries."""
  handles, labels = ax.get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, title=title,
               title_fontsize=7, ncol=1 + len(handles) // 30)


def _ema(values, alpha: float = 0.3) -> np.ndarray:
  out, acc = [], None
  for v in values:
    acc = v if acc is None else alpha * v + (1 - alpha) * acc
    out.append(acc)
  return np.asarray(out)


def plot_sweep(workdir: pathlib.Path, loaded, swept, rows, agg) -> list[pathlib.Path]:
  """loss_curves.png, lr_schedules.png and, when peak LR is swept,
  loss_vs_peak_lr.png (each seed a point; the mean with its 95% CI)."""
  out = workdir / "plots"
  out.mkdir(exist_ok=True)
  written = []
  keys, cond = _conditions(swept, rows)
  style = _style(list(dict.fromkeys(cond.values())))
  seeds = any(f.split(".")[-1] == "seed" for f in swept)
  seen: set = set()

  def label(run_id):   # one legend entry per condition (its seeds share a style)
    c = cond[run_id]
    if c in seen:
      return None
    seen.add(c)
    return _label(keys, c)

  # runs with different batch sizes are compared at equal examples seen
  by_examples = "data.batch_size" in swept
  fig = Figure(figsize=(14, 4.8), layout="constrained")
  a1, a2 = fig.subplots(1, 2)
  for r in loaded["record"]["runs"]:
    m = loaded["metrics"][r["run_id"]]
    st = style[cond[r["run_id"]]]
    per = r["config"]["data"]["batch_size"] if by_examples else 1
    tr = [(x["step"] * per, x["loss"]) for x in m if "loss" in x]
    ev = [(x["step"] * per, x["eval_loss"]) for x in m if "eval_loss" in x]
    if tr:
      steps, losses = map(np.asarray, zip(*tr))
      a1.plot(steps, losses, color=st["color"], lw=0.5, alpha=0.25)
      a1.plot(steps, _ema(losses), color=st["color"], ls=st["ls"], lw=1.0)
    if ev:
      a2.plot(*zip(*ev), color=st["color"], ls=st["ls"], marker=st["marker"], ms=3, lw=1.0,
              label=label(r["run_id"]))
  xlabel = "examples seen (sequences)" if by_examples else "updates"
  a1.set(title="train loss (EMA 0.3 of the logged rows; raw faint)", xlabel=xlabel,
         ylabel="loss", yscale="log")
  a2.set(title="eval loss" + (" (each seed a line)" if seeds else ""), xlabel=xlabel,
         ylabel="loss", yscale="log")
  for ax in (a1, a2):   # a label at every integer and half on the log axis
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=np.arange(2, 20) / 2))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  _legend(fig, a2)
  written.append(_save(fig, out / "loss_curves.png"))

  fig = Figure(figsize=(9, 4.8), layout="constrained")
  ax = fig.subplots()
  seen.clear()
  for r in loaded["record"]["runs"]:
    cfg = config_lib.from_saved(r["config"])
    st = style[cond[r["run_id"]]]
    steps = np.arange(cfg.train.total_steps + 1)
    ax.plot(steps, np.asarray(schedules.schedule(steps, train.hparams(cfg).schedule)),
            color=st["color"], ls=st["ls"], lw=1.0, label=label(r["run_id"]))
  ax.set(title="learning-rate schedules", xlabel="updates (0 = the first)", ylabel="lr")
  _legend(fig, ax)
  written.append(_save(fig, out / "lr_schedules.png"))

  if "optimizer.peak_lr" in swept:
    written.append(_loss_vs_lr(out / "loss_vs_peak_lr.png", keys, rows, agg))
  return written


def _loss_vs_lr(path, keys, rows, agg) -> pathlib.Path:
  others = [k for k in keys if k != "optimizer.peak_lr"]
  settings = list(dict.fromkeys(tuple(a[f] for f in others) for a in agg))
  style = _style(settings)
  fig = Figure(figsize=(11, 5.5), layout="constrained")
  ax = fig.subplots()
  for i, s in enumerate(settings):
    st = style[s]
    shift = 1.03 ** (i - (len(settings) - 1) / 2)   # spread the settings' points apart
    pts = sorted((a["optimizer.peak_lr"], a) for a in agg
                 if tuple(a[f] for f in others) == s)
    xs = np.asarray([x for x, _ in pts]) * shift
    ys = np.asarray([np.nan if a["final_eval_mean"] is None else a["final_eval_mean"]
                     for _, a in pts])
    ci = [a["final_eval_ci95"] for _, a in pts]
    err = np.asarray([[0, 0] if c is None else [y - c[0], c[1] - y] for y, c in zip(ys, ci)]).T
    n = max((a["n"] for _, a in pts), default=0)
    ax.errorbar(xs, ys, yerr=err, color=st["color"], ls=st["ls"], marker=st["marker"], ms=4,
                capsize=2, label=_label(others, s) + f" (n={n})")
    seeds = [(r["optimizer.peak_lr"] * shift, r["final_eval_loss"]) for r in rows
             if tuple(r[f] for f in others) == s and r.get("final_eval_loss") is not None
             and r["status"] != "diverged"]
    if seeds:
      ax.scatter(*zip(*seeds), color=st["color"], s=9, alpha=0.45, lw=0)
  lrs = sorted({a["optimizer.peak_lr"] for a in agg})
  ax.set(xscale="log", xlabel="peak learning rate",
         ylabel="final eval loss: seeds (dots), mean and 95% CI")
  ax.set_xticks(lrs, [f"{x:g}" for x in lrs])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  _legend(fig, ax)
  return _save(fig, path)


def plot_claims(verdicts: list[dict], path, title: str = "") -> pathlib.Path | None:
  """A forest plot: each claim's paired difference b - a with its 95% CI,
  coloured by its verdict (rate claims, which have no interval, are left to
  the table)."""
  rows = [v for v in verdicts if v.get("ci95")]
  if not rows:
    return None
  colors = {"reproduced": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:gray"}
  fig = Figure(figsize=(15, 1.4 + 0.45 * len(rows)), layout="constrained")
  ax = fig.subplots()
  for i, v in enumerate(reversed(rows)):
    lo, hi = v["ci95"]
    ax.errorbar([v["effect"]], [i], xerr=[[v["effect"] - lo], [hi - v["effect"]]], fmt="o",
                color=colors[v["verdict"]], capsize=3,
                label=v["verdict"] if v["verdict"] not in ax.get_legend_handles_labels()[1]
                else None)
    ax.annotate(f"{v['n_pairs']} pairs", (hi, i), xytext=(4, 0), textcoords="offset points",
                va="center", fontsize=6)
  ax.axvline(0, color="black", lw=0.8)
  ax.set_yticks(range(len(rows)), [f"{v.get('experiment', '')}{': ' if v.get('experiment') else ''}"
                                   f"{v['claim']}"[:80] + f" [{v['metric']}; predicted b - a "
                                   f"{'< 0' if v['direction'] == 'lower' else '> 0'}]"
                                   for v in reversed(rows)], fontsize=7)
  ax.set(xlabel="paired difference b - a (95% CI); the paper predicts the sign in its claim")
  fig.suptitle(title, fontsize=10)
  _legend(fig, ax)
  return _save(fig, pathlib.Path(path), dpi=110)


def plot_analysis(workdir: pathlib.Path, rows: list[dict]) -> pathlib.Path:
  """Sharpness, preconditioned sharpness and its ratio to Adam's stability
  threshold vs step, one line per run, log scale."""
  titles = {"sharpness": "sharpness (top eigenvalue of H)",
            "preconditioned_sharpness": "preconditioned sharpness (top eig. of P^-1 H)",
            "stability_ratio": "P^-1 H sharpness x lr / (2 (1 + b1) / (1 - b1))"}
  keys = [k for k in titles if any(k in r for r in rows)]
  run_ids = list(dict.fromkeys(r["run_id"] for r in rows))
  colors = matplotlib.colormaps["tab20" if len(run_ids) > 10 else "tab10"]
  fig, axes = _subplots((5.5 * len(keys), 4.8), 1, len(keys), squeeze=False)
  for ax, key in zip(axes[0], keys):
    for i, run_id in enumerate(run_ids):
      pts = [(r["step"], r[key]) for r in rows if r["run_id"] == run_id and key in r]
      if pts:
        ax.plot(*zip(*pts), marker="o", ms=3, color=colors(i % colors.N), label=run_id)
    if all(r[key] > 0 for r in rows if key in r):
      ax.set_yscale("log")
    if key == "stability_ratio":
      ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set(title=titles[key], xlabel="step (updates done)")
    ax.title.set_fontsize(9)
  fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center",
             ncol=min(3, len(run_ids)), fontsize=6, frameon=False)
  (workdir / "plots").mkdir(exist_ok=True)
  return _save(fig, workdir / "plots" / "sharpness_vs_step.png",
               rect=(0, 0.04 * (1 + (len(run_ids) - 1) // 3), 1, 1))


def plot_schedules(out_path, *, total_steps: int = 1000, warmup_steps: int = 200) -> None:
  """Every warmup shape, decay shape and WSD cooldown shape, one panel each."""

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
  fig, axes = _subplots((15, 4), 1, 3)
  for ax, (title, field, names, extra) in zip(axes, panels):
    for name in names:
      hp = schedules.make_hparams(**{**base, **extra, field: name})
      ax.plot(steps, np.asarray(schedules.schedule(steps, hp)), label=name)
    ax.axvline(warmup_steps, color="gray", lw=0.5, ls=":")
    ax.set(title=title, xlabel="step (0 = first update)", ylabel="lr / peak_lr")
    ax.legend(fontsize=8)
  fig.suptitle(f"warmup_research.schedules: total_steps={total_steps}, "
               f"warmup_steps={warmup_steps}, final_frac=0.1")
  pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
  _save(fig, pathlib.Path(out_path), dpi=110)
