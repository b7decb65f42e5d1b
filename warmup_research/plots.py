"""Every figure: a sweep's loss curves, norms, schedules and loss vs peak
LR; sharpness over checkpoints; every schedule shape.

Figures are drawn with matplotlib's object API (`Figure`, no pyplot), so
importing this module never changes a notebook's backend.
"""
from __future__ import annotations

import io
import math
import pathlib
import textwrap

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
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  path = pathlib.Path(path)
  if not (path.is_file() and path.read_bytes() == buf.getvalue()):   # unchanged: untouched
    path.write_bytes(buf.getvalue())
  return path


LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def _setting(row, fields) -> tuple:
  """A row's values of `fields` as a key (a list value, e.g.
  train.checkpoint_steps, as a tuple)."""
  return tuple(tuple(row[f]) if isinstance(row[f], list) else row[f] for f in fields)


def _conditions(swept, rows) -> tuple[list[str], dict]:
  """The non-seed swept fields, and each run's condition (`_setting`)."""
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  return keys, {r["run_id"]: _setting(r, keys) for r in rows}


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


def _facets(keys: list[str], conditions: list[tuple]):
  """(colour axis, panel axes, the panels' values): colour by peak LR where
  swept, else by the field with the most values; a panel per setting of
  the rest."""
  if not keys:
    return None, [], [()]
  distinct = {f: len({c[i] for c in conditions}) for i, f in enumerate(keys)}
  colour_by = "optimizer.peak_lr" if "optimizer.peak_lr" in keys else max(keys, key=distinct.get)
  facet_by = [f for f in keys if f != colour_by]
  facets = list(dict.fromkeys(tuple(c[keys.index(f)] for f in facet_by) for c in conditions))
  return colour_by, facet_by, facets


def _colours(values: list) -> dict:
  """A colour per value: tab10 up to 10, else viridis in order."""
  cmap = matplotlib.colormaps["tab10" if len(values) <= 10 else "viridis"]
  return {v: cmap(i if len(values) <= 10 else i / (len(values) - 1)) for i, v in enumerate(values)}


def _label(keys, condition) -> str:
  return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, condition)) or "all runs"


def _legend(fig, ax, title: str = "") -> None:
  """One legend, outside the axes, whatever the number of entries: the
  labelled lines of every panel of `fig` (`ax`'s first), each label once."""
  entries: dict = {}
  for a in [ax, *(a for a in fig.axes if a is not ax)]:
    for h, label in zip(*a.get_legend_handles_labels()):
      entries.setdefault(label, h)
  handles, labels = list(entries.values()), list(entries)
  if handles:
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, title=title,
               title_fontsize=7, ncol=1 + len(handles) // 30)


def _log_ticks(ax) -> None:
  """Readable labels on a log y axis: every half (2.5, 3.0, ...) over a
  narrow range, 1-2-5 steps over a wide one."""
  lo, hi = ax.get_ylim()
  subs = np.arange(2, 20) / 2 if hi / max(lo, 1e-12) <= 4 else (1.0, 2.0, 5.0)
  ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=subs))
  ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _ema(values, alpha: float = 0.3) -> np.ndarray:
  """Exponential moving average over the rows, debiased as Adam's moments."""
  # From 0 and divided by 1 - (1 - alpha)^(t+1), not started at the first value: that start
  # leaves the first row the whole remaining weight (1 - alpha)^t, so the early curve clung
  # to the initial loss (4.8 against a raw 3.3 at update 10), just where warmup acts.
  out, acc = [], 0.0
  for t, v in enumerate(values):
    acc = alpha * v + (1 - alpha) * acc
    out.append(acc / (1 - (1 - alpha) ** (t + 1)))
  return np.asarray(out)


def _sweep_layout(loaded, swept, rows) -> dict:
  """What every per-run figure of a sweep shares: a row of panels per
  setting of the non-seed fields other than the colour axis (peak LR where
  swept), so every line in a panel differs in one value; the colours; and
  the x axis (examples seen when batch sizes differ, else updates)."""
  keys, cond = _conditions(swept, rows)
  colour_by, facet_by, facets = _facets(keys, list(cond.values()))
  at = lambda c, fields: tuple(c[keys.index(f)] for f in fields)
  colours = _colours([c[0] for c in dict.fromkeys(at(c, [colour_by]) for c in cond.values())]
                     if colour_by else [None])
  by_examples = "data.batch_size" in swept
  return dict(keys=keys, cond=cond, colour_by=colour_by, facet_by=facet_by, facets=facets,
              at=at, colours=colours, name=colour_by.split(".")[-1] if colour_by else "",
              by_examples=by_examples,
              xlabel="examples seen (sequences)" if by_examples else "updates",
              seeds=any(f.split(".")[-1] == "seed" for f in swept))


def _members(lay, runs, facet, value) -> list[dict]:
  """The runs of panel row `facet` with colour-axis value `value`."""
  at, cond = lay["at"], lay["cond"]
  return [r for r in runs if at(cond[r["run_id"]], lay["facet_by"]) == facet
          and (lay["colour_by"] is None or at(cond[r["run_id"]], [lay["colour_by"]]) == (value,))]


def _x(lay, r, step: int):
  """Where a run's row of `step` sits on the x axis: updates or examples seen."""
  return step * (r["config"]["data"]["batch_size"] if lay["by_examples"] else 1)


def _train_rows(lay, loaded, r) -> tuple[np.ndarray, list[dict]]:
  """A run's train rows and their x positions."""
  train_rows = [x for x in loaded["metrics"][r["run_id"]] if "loss" in x]
  return np.asarray([_x(lay, r, x["step"]) for x in train_rows]), train_rows


def plot_sweep(workdir: pathlib.Path, loaded, swept, rows, agg) -> list[pathlib.Path]:
  """loss_curves.png, norms.png (gradient and update norms),
  update_sizes.png (per-block update sizes over the first updates),
  lr_schedules.png and, when peak LR is swept, loss_vs_peak_lr.png (each seed a point; the
  mean with its 95% CI where a condition has 2 or more seeds)."""
  out = workdir / "plots"
  out.mkdir(exist_ok=True)
  lay = _sweep_layout(loaded, swept, rows)
  written = [_save(_loss_curves(lay, loaded), out / "loss_curves.png")]
  norms = _norms(lay, loaded)
  if norms is not None:
    written.append(_save(norms, out / "norms.png"))
  sizes = _update_sizes(lay, loaded)
  if sizes is not None:
    written.append(_save(sizes, out / "update_sizes.png"))
  written.append(_save(_lr_schedules(lay, loaded), out / "lr_schedules.png"))
  if "optimizer.peak_lr" in swept:
    written.append(_loss_vs_lr(out / "loss_vs_peak_lr.png", lay["keys"], rows, agg,
                               bits_per_nat(loaded)))
  return written


def bits_per_nat(loaded) -> float | None:
  """Bits per byte per nat per token (tokens_per_byte / ln 2) of the
  workdir's data, when every group has the same, known one; else None."""
  per_byte = {g.get("tokens_per_byte") for g in loaded.get("groups", [])}
  k = per_byte.pop() if len(per_byte) == 1 else None
  return None if k is None else k / math.log(2)


def _bpb_axis(ax, k: float | None) -> None:
  """A right-hand axis in bits per byte, which compares across tokenizers."""
  if k is None:
    return
  sec = ax.secondary_yaxis("right", functions=(lambda y: y * k, lambda b: b / k))
  sec.set_ylabel("bits per byte (validation text)", fontsize=8)
  plain = matplotlib.ticker.FormatStrFormatter("%.3g")   # not 2.4x10^0 on a log axis
  sec.yaxis.set_major_formatter(plain)
  sec.yaxis.set_minor_formatter(plain)


def _loss_curves(lay, loaded) -> Figure:
  runs = loaded["record"]["runs"]
  facets, facet_by, colours = lay["facets"], lay["facet_by"], lay["colours"]
  fig = Figure(figsize=(13, 2.8 * len(facets) + 0.8), layout="constrained")
  axes = fig.subplots(len(facets), 2, squeeze=False, sharex=True, sharey=True)
  labelled: set = set()   # one legend entry per colour, from whichever panel has it first
  for fi, facet in enumerate(facets):
    a1, a2 = axes[fi]
    for value, colour in colours.items():
      evals = []
      for r in _members(lay, runs, facet, value):
        steps, train_rows = _train_rows(lay, loaded, r)
        ev = [(_x(lay, r, x["step"]), x["eval_loss"]) for x in loaded["metrics"][r["run_id"]]
              if "eval_loss" in x]
        if train_rows:
          losses = np.asarray([x["loss"] for x in train_rows])
          # the raw rows stay plainly visible: the EMA lags a fast early drop
          a1.plot(steps, losses, color=colour, lw=0.8, alpha=0.45)
          a1.plot(steps, _ema(losses), color=colour, lw=1.5, alpha=0.95)
        if ev:
          a2.plot(*zip(*ev), color=colour, lw=0.6, alpha=0.3)
          evals.append(dict(ev))
      if evals:
        steps = sorted({s for e in evals for s in e})
        mean = [np.mean([e[s] for e in evals if s in e]) for s in steps]
        a2.plot(steps, mean, color=colour, lw=1.8, marker="o", ms=3,
                label=None if value in labelled else (
                    f"{lay['name']}={value} (n={len(evals)})" if lay["colour_by"] else
                    f"all runs (n={len(evals)})"))
        labelled.add(value)
    a1.set_ylabel("loss")
    if facet_by:
      a1.set_title(textwrap.fill(_label(facet_by, facet), 90), fontsize=7, loc="left")
  fig.suptitle("left: train loss, each logged row (thin) and their debiased EMA 0.3 (thick); "
               "right: eval loss"
               + (" (bold: mean over seeds; faint: each seed)" if lay["seeds"] else ""),
               fontsize=10)
  for ax in axes.flat:
    ax.set_yscale("log")
  _log_ticks(axes[0][0])   # the axes share y
  for ax in axes[:, 1]:
    _bpb_axis(ax, bits_per_nat(loaded))
  for ax in axes[-1]:
    ax.set_xlabel(lay["xlabel"])
  _legend(fig, axes[0][1])
  return fig


NORMS = (("gradient norm (of the loss, before the optimizer)", lambda x: x["grad_norm"]),
         ("update norm (the step applied to the params)", lambda x: x["update_norm"]),
         ("update norm / parameter norm", lambda x: x["update_norm"] / x["param_norm"]))


def _norms(lay, loaded) -> Figure | None:
  """A column per norm of NORMS, a row per panel setting, each run a line
  (None when no run logged norms: metrics files that predate them)."""
  runs = loaded["record"]["runs"]
  if not any("grad_norm" in x for r in runs for x in loaded["metrics"][r["run_id"]]):
    return None
  facets = lay["facets"]
  fig = Figure(figsize=(15, 2.8 * len(facets) + 0.8), layout="constrained")
  axes = fig.subplots(len(facets), len(NORMS), squeeze=False, sharex=True, sharey="col")
  labelled: set = set()
  for fi, facet in enumerate(facets):
    for value, colour in lay["colours"].items():
      for r in _members(lay, runs, facet, value):
        steps, train_rows = _train_rows(lay, loaded, r)
        for ax, (_, norm) in zip(axes[fi], NORMS):
          # a frozen (diverged) run logs NaN: left out, as is any non-positive value on log axes
          pts = [(s, v) for s, x in zip(steps, train_rows) if "grad_norm" in x
                 for v in [norm(x)] if math.isfinite(v) and v > 0]
          if pts:
            ax.plot(*zip(*pts), color=colour, lw=0.9, alpha=0.7,
                    label=None if value in labelled or not lay["colour_by"]
                    else f"{lay['name']}={value}")
            labelled.add(value)
  _label_columns(fig, axes, lay, [t for t, _ in NORMS],
                 "norms in each logged train row, each run a line"
                 + (" (seeds share a colour)" if lay["seeds"] else ""))
  return fig


def _label_columns(fig, axes, lay, titles, suptitle: str) -> None:
  """Titles, axes and legend of a figure with a column per measure (its
  title in `titles`) and a row per panel setting, on log y axes."""
  if lay["facet_by"]:
    for fi, facet in enumerate(lay["facets"]):
      axes[fi][0].set_ylabel(textwrap.fill(_label(lay["facet_by"], facet), 40), fontsize=7)
  for ax, title in zip(axes[0], titles):
    ax.set_title(title, fontsize=9)
  for ax in axes.flat:
    ax.set_yscale("log")
  for ax in axes[0]:
    _log_ticks(ax)   # each column shares its y axis
  for ax in axes[-1]:
    ax.set_xlabel(lay["xlabel"])
  fig.suptitle(suptitle, fontsize=10)
  _legend(fig, axes[0][0])


SIZES = (("relative update ||dW|| / ||W||", "update_ratio/"),
         ("angular update of the weight matrices (radians)", "angle/"))


def _update_sizes(lay, loaded) -> Figure | None:
  """Per measure of SIZES a column, per panel setting a row: each run's
  mean over its blocks (bold) and each block (faint, first seed only),
  over the first updates (the longest warmup x 4, at least a fifth of
  training). None when no run logged them (files that predate them)."""
  runs = loaded["record"]["runs"]
  logged = lambda r: [x for x in loaded["metrics"][r["run_id"]] if "loss" in x
                      and any(k.startswith("angle/") for k in x)]
  if not any(logged(r) for r in runs):
    return None
  # 4 x the warmup (at least a fifth of training), never past the longest run
  window = max(min(max(4 * config_lib.durations(config_lib.from_saved(r["config"]))[0],
                       r["config"]["train"]["total_steps"] // 5),
                   r["config"]["train"]["total_steps"]) for r in runs)
  facets = lay["facets"]
  fig = Figure(figsize=(11, 2.8 * len(facets) + 0.8), layout="constrained")
  axes = fig.subplots(len(facets), len(SIZES), squeeze=False, sharex=True, sharey="col")
  labelled: set = set()
  for fi, facet in enumerate(facets):
    for value, colour in lay["colours"].items():
      for n, r in enumerate(_members(lay, runs, facet, value)):
        # a frozen run's rows are NaN: left out, as on every log axis here
        rows = [x for x in logged(r) if x["step"] < window and math.isfinite(x["loss"])]
        for ax, (_, prefix) in zip(axes[fi], SIZES):
          blocks = sorted({k for x in rows for k in x if k.startswith(prefix)})
          steps = [_x(lay, r, x["step"]) for x in rows]
          if n == 0:
            for b in blocks:
              ax.plot(steps, [x.get(b, math.nan) for x in rows], color=colour, lw=0.5,
                      alpha=0.3)
          mean = [np.mean([x[b] for b in blocks]) if blocks else math.nan for x in rows]
          ax.plot(steps, mean, color=colour, lw=1.4, alpha=0.9,
                  label=None if value in labelled or not lay["colour_by"]
                  else f"{lay['name']}={value}")
        labelled.add(value)
  _label_columns(fig, axes, lay, [t for t, _ in SIZES],
                 f"update sizes over the first {window} updates: each run's mean over its "
                 "blocks (bold) and each block of its first seed (faint)")
  return fig


def _lr_schedules(lay, loaded) -> Figure:
  runs, cond, at = loaded["record"]["runs"], lay["cond"], lay["at"]
  facets, facet_by, colour_by = lay["facets"], lay["facet_by"], lay["colour_by"]
  ncols = min(3, len(facets))
  nrows = -(-len(facets) // ncols)
  fig = Figure(figsize=(4.6 * ncols + 1.8, 3.0 * nrows + 0.6), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
  drawn: set = set()
  for fi, facet in enumerate(facets):
    ax = axes.flat[fi]
    for r in runs:
      c = cond[r["run_id"]]
      if at(c, facet_by) != facet or c in drawn:   # a condition's seeds share a schedule
        continue
      drawn.add(c)
      cfg = config_lib.from_saved(r["config"])
      steps = np.arange(cfg.train.total_steps + 1)
      value = at(c, [colour_by])[0] if colour_by else None
      ax.plot(steps, np.asarray(schedules.curve(len(steps), train.hparams(cfg).schedule)),
              color=lay["colours"][value], lw=1.2,
              label=f"{lay['name']}={value}" if colour_by and fi == 0 else None)
    ax.set_title(_label(facet_by, facet) if facet_by else "learning-rate schedules", fontsize=8)
  for ax in axes.flat[len(facets):]:
    ax.set_visible(False)
  for ax in axes[-1]:
    ax.set_xlabel("updates (0 = the first)")
  for ax in axes[:, 0]:
    ax.set_ylabel("lr")
  _legend(fig, axes.flat[0])
  return fig


def _loss_vs_lr(path, keys, rows, agg, bits: float | None = None) -> pathlib.Path:
  # a field set to one value everywhere (a ladder's single size) only lengthens the labels
  others = [k for k in keys if k != "optimizer.peak_lr"
            and len({_setting(a, [k]) for a in agg}) > 1]
  settings = list(dict.fromkeys(_setting(a, others) for a in agg))
  style = _style(settings)
  fig = Figure(figsize=(11, 5.5), layout="constrained")
  ax = fig.subplots()
  any_ci = False
  for i, s in enumerate(settings):
    st = style[s]
    shift = 1.03 ** (i - (len(settings) - 1) / 2)   # spread the settings' points apart
    pts = sorted((a["optimizer.peak_lr"], a) for a in agg
                 if _setting(a, others) == s)
    xs = np.asarray([x for x, _ in pts]) * shift
    ys = np.asarray([np.nan if a["final_eval_mean"] is None else a["final_eval_mean"]
                     for _, a in pts])
    ci = [a["final_eval_ci95"] for _, a in pts]
    has = np.asarray([c is not None for c in ci], bool)
    n = max((a["n"] for _, a in pts), default=0)
    # a point with fewer than 2 finished seeds has no interval: no bar, not a zero-length one
    ci_note = ("mean and 95% CI" if has.all() else "no CI" if not has.any()
               else "mean; 95% CI where 2 or more seeds finished")
    ax.plot(xs, ys, color=st["color"], ls=st["ls"], marker=st["marker"], ms=4,
            label=_label(others, s) + f" (n = {n}: {ci_note})")
    if has.any():
      any_ci = True
      err = np.asarray([[y - c[0], c[1] - y] for y, c in zip(ys, ci) if c is not None]).T
      ax.errorbar(xs[has], ys[has], yerr=err, fmt="none", ecolor=st["color"], capsize=2)
    seeds = [(r["optimizer.peak_lr"] * shift, r["final_eval_loss"]) for r in rows
             if _setting(r, others) == s and r.get("final_eval_loss") is not None
             and r["status"] != "diverged" and r.get("outcome") != "diverged"]
    if seeds:
      ax.scatter(*zip(*seeds), color=st["color"], s=9, alpha=0.45, lw=0)
  lrs = sorted({a["optimizer.peak_lr"] for a in agg})
  ax.set(xscale="log", xlabel="peak learning rate",
         ylabel="final eval loss: seeds (dots), mean (line), 95% t CI (bars)" if any_ci else
         "final eval loss (n = 1 per point: no CI)" if max(a["n"] for a in agg) == 1 else
         "final eval loss (under 2 seeds finished per point: no CI)")
  # a grid of 2 LRs per octave crowds full-precision labels into one another
  crowded = len(lrs) > 6
  ax.set_xticks(lrs, [f"{x:.2g}" if crowded else f"{x:g}" for x in lrs],
                rotation=45 if crowded else 0, fontsize=7 if crowded else None)
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  _bpb_axis(ax, bits)
  _legend(fig, ax)
  return _save(fig, path)


def plot_heatmap(out_dir, maps: list[dict]) -> pathlib.Path | None:
  """heatmap_X_Y.png from `results.heatmap`'s numbers: a row of panels per
  setting of the other swept fields: mean final eval loss (the best y per x
  marked, with its 95% seed-bootstrap interval), stalled and diverged
  fractions over seeds, and final eval loss vs y, a line per x value."""
  if not maps:
    return None
  x, y = maps[0]["x"], maps[0]["y"]
  xn, yn = x.split(".")[-1], y.split(".")[-1]
  losses = [v for m in maps for row in m["loss_YxX"] for v in row if v is not None]
  lo, hi = (min(losses), max(losses)) if losses else (0.0, 1.0)
  fig = Figure(figsize=(19, 4.1 * len(maps) + 0.5), layout="constrained")
  axes = fig.subplots(len(maps), 4, squeeze=False)
  panels = (("loss_YxX", "mean final eval loss (not diverged)", "viridis", (lo, hi)),
            ("stalled_YxX", "stalled fraction", "Oranges", (0, 1)),
            ("diverged_YxX", "diverged fraction", "Reds", (0, 1)))
  for mi, m in enumerate(maps):
    facet = textwrap.fill(", ".join(f"{k.split('.')[-1]}={v}" for k, v in m["facet"].items()),
                          48)
    for pi, (key, title, cmap, (vmin, vmax)) in enumerate(panels):
      ax = axes[mi][pi]
      z_YxX = np.asarray([[np.nan if v is None else v for v in row] for row in m[key]], float)
      im = ax.imshow(z_YxX, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
      for (i, j), v in np.ndenumerate(z_YxX):
        if np.isfinite(v):
          bright = (v - vmin) / max(vmax - vmin, 1e-12)
          light = bright < 0.55 if cmap == "viridis" else bright > 0.55
          ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                  color="white" if light else "black")
      if key == "loss_YxX" and m["best"]:
        bx = [m["xs"].index(b["x"]) for b in m["best"]]
        by = [m["ys"].index(b["best"]) for b in m["best"]]
        err = [[m["ys"].index(b["best"]) - m["ys"].index(b["lo"]) if b["lo"] is not None else 0
                for b in m["best"]],
               [m["ys"].index(b["hi"]) - m["ys"].index(b["best"]) if b["hi"] is not None else 0
                for b in m["best"]]]
        ax.errorbar(bx, by, yerr=err, fmt="none", ecolor="red", elinewidth=1.5, capsize=3)
        ax.plot(bx, by, "r*", ms=9, label=f"best {yn} per {xn} (95% seed-bootstrap interval)")
      ax.set_xticks(range(len(m["xs"])), [f"{v:g}" for v in m["xs"]], fontsize=7)
      ax.set_yticks(range(len(m["ys"])), [f"{v:g}" for v in m["ys"]], fontsize=7)
      ax.set(xlabel=xn, ylabel=yn)
      ax.set_title(f"{title}{chr(10) + facet if facet else ''}", fontsize=8, loc="left")
      fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[mi][3]
    colours = {v: matplotlib.colormaps["viridis"](i / max(len(m["xs"]) - 1, 1))
               for i, v in enumerate(m["xs"])}   # ordered: x is numeric
    for j, xv in enumerate(m["xs"]):
      ys = [m["loss_YxX"][i][j] for i in range(len(m["ys"]))]
      ax.plot(m["ys"], [np.nan if v is None else v for v in ys], marker="o", ms=3,
              color=colours[xv], label=f"{xn}={xv:g}")
    numeric_log = min(m["ys"]) > 0 and max(m["ys"]) / min(m["ys"]) >= 20
    ax.set(xscale="log" if numeric_log else "linear", xlabel=yn,
           ylabel="mean final eval loss (not diverged)")
    ax.set_title(f"final eval loss vs {yn}, a line per {xn}"
                 f"{chr(10) + facet if facet else ''}", fontsize=8, loc="left")
    ax.legend(fontsize=6)
  axes[0][0].legend(fontsize=6, loc="upper right")
  out = pathlib.Path(out_dir)
  out.mkdir(exist_ok=True)
  return _save(fig, out / f"heatmap_{xn}_{yn}.png")


def plot_claims(verdicts: list[dict], path, title: str = "") -> pathlib.Path | None:
  """A forest plot: each claim's paired difference b - a over seeds with its
  95% CI (equivalence: the 90% CI, its margin as ticks), coloured by the
  Holm-adjusted verdict, and beneath it, fainter, each level's own effect
  and CI, so a sign flip that a pooled mean hides shows. Claims with no
  interval at all (sign tests without spread, failed premises) are left
  to the table."""
  colors = {"reproduced": "tab:green", "contradicted": "tab:red", "equivalent": "tab:blue",
            "not equivalent": "tab:orange", "non-inferior": "tab:cyan", "inferior": "tab:pink"}
  items = []   # (label, effect, interval, colour, is a level)
  for v in verdicts:
    levels = [p for p in v.get("per_level") or [] if p.get("ci95")]
    ci = v.get("ci90") if v.get("kind") in ("equivalence", "law") else v.get("ci95")
    if not (ci or levels):
      continue
    verdict = v.get("verdict_adjusted", v["verdict"])
    head = f"{v.get('experiment', '')}{': ' if v.get('experiment') else ''}{v['claim']}"[:80]
    sign = {"lower": "< 0", "higher": "> 0"}.get(v.get("direction"), f"in ±{v.get('margin')}")
    if v.get("kind") == "noninferiority":
      sign = (f"< +{v['margin']}" if v.get("direction") == "lower" else f"> -{v['margin']}")
    items.append((f"{head} [{v['metric']}; predicted b - a {sign}; {v['n_seeds']} seeds]",
                  v["effect"], ci, colors.get(verdict, "tab:gray"), False, verdict, v))
    for p in levels:
      name = ", ".join(f"{k.split('.')[-1]}={x}" for k, x in p["level"].items())
      items.append((f"    at {name} ({p['n_seeds']} seeds)", p["effect"], p["ci95"],
                    colors.get(p.get("verdict_within"), "tab:gray"), True, None, None))
  if not items:
    return None
  fig = Figure(figsize=(15, 1.4 + 0.3 * len(items)), layout="constrained")
  ax = fig.subplots()
  n = len(items)
  for i, (_, effect, ci, color, is_level, verdict, v) in enumerate(items):
    y = n - 1 - i
    if ci and effect is not None:
      ax.errorbar([effect], [y], xerr=[[effect - ci[0]], [ci[1] - effect]],
                  fmt="." if is_level else "o", color=color, alpha=0.5 if is_level else 1.0,
                  capsize=2 if is_level else 3, label=None if is_level or verdict in
                  ax.get_legend_handles_labels()[1] else verdict)
    if v is not None and v.get("kind") in ("equivalence", "law"):   # both TOSTs: +-margin
      ax.plot([-v["margin"], v["margin"]], [y, y], "|", color="black", ms=10)
    if v is not None and v.get("kind") == "noninferiority":   # the one bound that decides
      ax.plot([v["margin"] if v.get("direction") == "lower" else -v["margin"]], [y], "|",
              color="black", ms=10)
  ax.axvline(0, color="black", lw=0.8)
  ax.set_yticks(range(n), [it[0] for it in reversed(items)], fontsize=6)
  # two lines: one is wider than the figure of an experiment with short claim names
  ax.set(xlabel="paired difference b - a over seeds (95% CI; equivalence and law: 90% CI "
         "and the margin |; law: predicted - observed);\ncolour: the Holm-adjusted verdict; "
         "indented: each level")
  fig.suptitle(title, fontsize=10)
  _legend(fig, ax)
  return _save(fig, pathlib.Path(path), dpi=110)


def plot_trends(verdicts: list[dict], path) -> pathlib.Path | None:
  """trends.png: for each trend claim (a panel), every rung's paired effect
  b - a with its 95% CI against the rung's x on a log axis, and the line of
  the mean per-seed slope through the rungs' mean; titled by the slope's CI
  and verdict. None when no trend claim has rungs with an x."""
  trends = [v for v in verdicts if v.get("kind") == "trend"
            and any(p.get("x") and p.get("effect") is not None for p in v["per_level"])]
  if not trends:
    return None
  fig = Figure(figsize=(5.2 * len(trends), 3.8), layout="constrained")
  for ax, v in zip(fig.subplots(1, len(trends), squeeze=False)[0], trends):
    rungs = [p for p in v["per_level"] if p.get("x") and p.get("effect") is not None]
    xs, ys = [p["x"] for p in rungs], [p["effect"] for p in rungs]
    lo = [y - (p["ci95"] or [y, y])[0] for y, p in zip(ys, rungs)]
    hi = [(p["ci95"] or [y, y])[1] - y for y, p in zip(ys, rungs)]
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label="rung: b - a (95% CI)")
    if v.get("effect") is not None:
      logx = np.log10(xs)
      grid = np.linspace(logx.min(), logx.max(), 20)
      ax.plot(10 ** grid, np.mean(ys) + v["effect"] * (grid - logx.mean()), "--",
              label=f"slope {v['effect']:+.3f} per decade")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    # each rung's own x as a label: a ladder within one decade (2 and 8) gets no major tick
    ax.set_xticks(xs, [f"{x:,.0f}" if x >= 1000 else f"{x:.3g}" for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())   # they overlap
    ci = v.get("ci95")
    ci_text = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    ax.set_title(textwrap.fill(v["claim"], 60) + "\n" + textwrap.fill(
        f"slope{ci_text}, {v['n_seeds']} seeds: {v.get('verdict_adjusted', v['verdict'])}", 70),
        fontsize=8)
    ax.set(xlabel=v["x"], ylabel=f"{v['metric']}: b - a")
    ax.legend(fontsize=7)
  return _save(fig, pathlib.Path(path), dpi=110)


def plot_law_predictions(verdicts: list[dict], path) -> pathlib.Path | None:
  """law_predictions.png: for each law claim (a row) and each held-out
  schedule (a panel), every seed's observed eval curve (solid) and the
  law's prediction of it from that seed's fit (dashed, the same colour),
  over the evals the law predicts; titled by the mean final error and the
  margin. None when no law claim has a prediction."""
  laws = [v for v in verdicts if v.get("kind") == "law" and v.get("curves")]
  if not laws:
    return None
  name = lambda level: ", ".join(f"{k.split('.')[-1]}={x}" for k, x in level.items())  # noqa: E731
  cols = max(len({name(c["level"]) for c in v["curves"]}) for v in laws)
  fig = Figure(figsize=(4.2 * cols, 3.0 * len(laws) + 0.4), layout="constrained")
  axes = fig.subplots(len(laws), cols, squeeze=False, sharex=True, sharey=True)
  for row, v in zip(axes, laws):
    levels = list(dict.fromkeys(name(c["level"]) for c in v["curves"]))
    runs = list(dict.fromkeys(c["run_id"] for c in v["curves"]))
    colour = _colours(list(range(len(runs))))
    for ax, level in zip(row, levels):
      mine = [c for c in v["curves"] if name(c["level"]) == level]
      for c in mine:
        col = colour[runs.index(c["run_id"])]
        ax.plot(c["steps"], c["observed"], "-", color=col, lw=1)
        ax.plot(c["steps"], c["predicted"], "--", color=col, lw=1)
      error = np.mean([c["predicted"][-1] - c["observed"][-1] for c in mine])
      ax.set_title(textwrap.fill(f"{v['metric']}: {level}", 48) + f"\nmean final error "
                   f"{error:+.3f} (margin ±{v['margin']}, {len(mine)} seeds)", fontsize=8)
      ax.set(xlabel="updates", ylabel="eval loss")
    for ax in row[len(levels):]:
      ax.set_visible(False)
  fig.suptitle("held-out schedules: observed (solid) and predicted by each seed's fit "
               "(dashed)", fontsize=10)
  return _save(fig, pathlib.Path(path), dpi=110)


def plot_analysis(workdir: pathlib.Path, rows: list[dict],
                  swept_of: dict[str, dict] | None = None) -> pathlib.Path:
  """sharpness_vs_step.png: sharpness, preconditioned sharpness and its ratio
  to Adam's stability threshold vs updates, on log axes. `swept_of` (run_id
  -> its swept values) arranges the runs: a row of panels per setting of the
  non-seed fields other than peak LR, colour by peak LR, each seed a faint
  line and the geometric mean over seeds a bold one. Without it, one line
  per run."""
  titles = {"sharpness": "sharpness (top eigenvalue of H)",
            "preconditioned_sharpness": "preconditioned sharpness (top eig. of P^-1 H)",
            "stability_ratio": "P^-1 H sharpness x lr / Adam's threshold 2(1+b1)/(1-b1)"}
  keys = [k for k in titles if any(r.get(k) is not None for r in rows)]
  run_ids = list(dict.fromkeys(r["run_id"] for r in rows))
  swept_of = swept_of or {rid: {"run": rid} for rid in run_ids}
  fields = [f for f in dict.fromkeys(f for rid in run_ids for f in swept_of[rid])
            if f.split(".")[-1] != "seed"]
  colour_by, facet_by, facets = _facets(
      fields, [tuple(swept_of[r].get(f) for f in fields) for r in run_ids])
  colours = list(dict.fromkeys(swept_of[r].get(colour_by) for r in run_ids))
  colour = _colours(colours)
  fig = Figure(figsize=(4.6 * len(keys) + 1.6, 2.9 * len(facets)), layout="constrained")
  axes = fig.subplots(len(facets), len(keys), squeeze=False, sharex=True, sharey="col")
  for fi, facet in enumerate(facets):
    for ki, key in enumerate(keys):
      ax = axes[fi][ki]
      for c in colours:
        members = [r for r in run_ids if swept_of[r].get(colour_by) == c
                   and tuple(swept_of[r].get(f) for f in facet_by) == facet]
        curves = {}
        for rid in members:
          pts = [(r["step"], r[key]) for r in rows if r["run_id"] == rid
                 and r.get(key) is not None and r[key] > 0]
          if pts:
            curves[rid] = dict(pts)
            ax.plot(*zip(*pts), color=colour[c], lw=0.6, alpha=0.3)
        steps = sorted(set.intersection(*(set(v) for v in curves.values()))) if curves else []
        if steps:
          mean = [np.exp(np.mean([np.log(v[s]) for v in curves.values()])) for s in steps]
          label = (f"{colour_by.split('.')[-1]}={c} (n={len(curves)})" if colour_by
                   else None)
          ax.plot(steps, mean, color=colour[c], lw=1.6, marker="o", ms=2.5,
                  label=label if fi == 0 and ki == 0 else None)
      ax.set_yscale("log")
      if key == "stability_ratio":
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
      if fi == 0:
        ax.set_title(titles[key], fontsize=9)
      if fi == len(facets) - 1:
        ax.set_xlabel("updates")
      if ki == 0 and facet_by:
        ax.set_ylabel(_label(facet_by, facet), fontsize=8)
  _legend(fig, axes[0][0], title="bold: geometric mean over seeds; faint: each seed")
  (workdir / "plots").mkdir(exist_ok=True)
  return _save(fig, workdir / "plots" / "sharpness_vs_step.png")


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
      ax.plot(steps, np.asarray(schedules.curve(len(steps), hp)), label=name)
    ax.axvline(warmup_steps, color="gray", lw=0.5, ls=":")
    ax.set(title=title, xlabel="step (0 = first update)", ylabel="lr / peak_lr")
    ax.legend(fontsize=8)
  fig.suptitle(f"warmup_research.schedules: total_steps={total_steps}, "
               f"warmup_steps={warmup_steps}, final_frac=0.1")
  pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
  _save(fig, pathlib.Path(out_path), dpi=110)
