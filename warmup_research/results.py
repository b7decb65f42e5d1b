"""Result tables and plots of a sweep workdir, rebuilt from its files.

`write(workdir)` reads `sweep.json`, `groups/*.json` and `metrics/*.jsonl`
and writes, atomically: `runs.csv` (one row per run), `summary.md` (seeds
aggregated as mean ± std, best marked), `summary.json` (the same numbers,
`n_compiles`, device and mesh, command, date), TensorBoard event files under
`tb/RUN_ID/`, and `plots/*.png`. `python -m warmup_research report WORKDIR`
calls it; so does the sweep runner at its end.
"""
from __future__ import annotations

import csv
import io
import json
import math
import pathlib
import shutil
import statistics
import time

import numpy as np

from warmup_research import schedules
from warmup_research.workdir import write_atomic

RUN_COLUMNS = ("status", "diverged_step", "final_train_loss", "final_eval_loss",
               "best_eval_loss", "initial_eval_loss", "tokens_seen", "step_seconds", "compile_seconds", "group")


def load(workdir) -> dict:
  """The sweep record, group records and per-run metrics rows of a workdir."""
  from warmup_research import loop
  wd = pathlib.Path(workdir)
  record = json.loads((wd / "sweep.json").read_text())
  groups = [json.loads(p.read_text()) for p in sorted((wd / "groups").glob("*.json"))]
  metrics = {r["run_id"]: loop.read_metrics(wd / "metrics" / f"{r['run_id']}.jsonl")
             for r in record["runs"]}
  return dict(record=record, groups=groups, metrics=metrics)


def _field(cfg: dict, dotted: str):
  """A run's effective value of a field (swept in other points or not)."""
  for key in dotted.split("."):
    cfg = cfg[key]
  return cfg


def run_rows(loaded) -> tuple[list[str], list[dict]]:
  """(swept field names, one row per run)."""
  from warmup_research import loop
  runs = loaded["record"]["runs"]
  swept = list(dict.fromkeys(f for r in runs for f in r["swept"]))
  group_of = {rid: g for g in loaded["groups"] for rid in g["run_ids"]}
  rows = []
  for r in runs:
    s = loop.summarize(loaded["metrics"][r["run_id"]])
    cfg, g = r["config"], group_of.get(r["run_id"], {})
    row = dict(run_id=r["run_id"], **{f: _field(cfg, f) for f in swept})
    row.update(status=s["status"] if g else "unfinished", diverged_step=s["diverged_step"],
               final_train_loss=s["final_train_loss"], final_eval_loss=s["final_eval_loss"],
               best_eval_loss=s["best_eval_loss"], initial_eval_loss=s["initial_eval_loss"],
               tokens_seen=s["steps"] * cfg["data"]["batch_size"] * cfg["data"]["seq_len"],
               step_seconds=g.get("step_seconds"), compile_seconds=g.get("compile_seconds"),
               group=g.get("group"))
    rows.append(row)
  return swept, rows


def to_csv(columns, rows) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
  w.writeheader()
  for row in rows:
    w.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
  return buf.getvalue()


def aggregate(swept, rows) -> list[dict]:
  """Rows with equal non-seed settings merged: mean ± std over seeds."""
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  out: dict[tuple, dict] = {}
  for row in rows:
    k = tuple(json.dumps(row[f]) for f in keys)
    agg = out.setdefault(k, dict(**{f: row[f] for f in keys}, n=0, diverged=0, final=[], best=[]))
    agg["n"] += 1
    agg["diverged"] += row["status"] == "diverged"
    for name, col in (("final", "final_eval_loss"), ("best", "best_eval_loss")):
      if row[col] is not None and math.isfinite(row[col]):
        agg[name].append(row[col])
  result = []
  for agg in out.values():
    for name in ("final", "best"):
      vals = agg.pop(name)
      agg[f"{name}_eval_mean"] = statistics.fmean(vals) if vals else None
      agg[f"{name}_eval_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else None
    result.append(agg)
  return result


def lr_sensitivities(swept, rows, agg) -> list[dict]:
  """Wortsman et al.'s LR sensitivity per setting of the non-LR, non-seed axes
  (needs optimizer.peak_lr swept over >= 2 values)."""
  from warmup_research.analysis import lr_sensitivity
  if "optimizer.peak_lr" not in swept:
    return []
  others = [f for f in swept if f != "optimizer.peak_lr" and f.split(".")[-1] != "seed"]
  inits = [r["initial_eval_loss"] for r in rows if r.get("initial_eval_loss") is not None]
  if not inits:
    return []
  initial = statistics.fmean(inits)
  by_setting: dict[str, list] = {}
  for a in agg:
    key = json.dumps({f: a[f] for f in others})
    by_setting.setdefault(key, []).append(
        (a["optimizer.peak_lr"], a["final_eval_mean"] if a["diverged"] < a["n"] else None))
  out = []
  for key, pts in by_setting.items():
    if len(pts) >= 2:
      losses = [float("nan") if y is None else y for _, y in pts]
      out.append(dict(**json.loads(key), n_lrs=len(pts),
                      lr_sensitivity=lr_sensitivity([x for x, _ in pts], losses, initial)))
  return out


def _pm(mean, std):
  return "—" if mean is None else f"{mean:.4f} ± {std:.4f}"


def markdown(loaded, swept, rows, agg, sens=()) -> str:
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  groups = loaded["groups"]
  device = groups[-1]["device"] if groups else {}
  valid = [a for a in agg if a["final_eval_mean"] is not None and a["diverged"] < a["n"]]
  best = min(valid, key=lambda a: a["final_eval_mean"]) if valid else None
  lines = [f"# {loaded['record']['experiment']}", "",
           f"- command: `{groups[-1]['command'] if groups else ''}`"
           + (f" at code {groups[-1]['code']}" if groups and groups[-1].get("code") else ""),
           f"- finished: {groups[-1]['finished_at'] if groups else 'not yet'}; "
           f"table written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
           f"- hardware: {device.get('n_devices')} x {device.get('device_kind')} "
           f"({device.get('platform')})"
           + (f" on {device['host']}" if device.get("host") else "")
           + f", {device.get('n_processes')} process(es), mesh {device.get('mesh')}",
           f"- {len(rows)} runs in {len(groups)} compile group(s); train-step compilations: "
           f"{sum(g['train_step_compiles'] for g in groups)}",
           "- eval loss: mean ± std over seeds (n per row), nats per token; "
           "★ = lowest mean final eval loss", "",
           "| " + " | ".join([*(k.split(".")[-1] for k in keys), "n", "diverged",
                              "final eval loss", "best eval loss", ""]) + " |",
           "|" + "---|" * (len(keys) + 5)]
  for a in agg:
    cells = [str(a[k]) for k in keys] + [str(a["n"]), str(a["diverged"]),
                                         _pm(a["final_eval_mean"], a["final_eval_std"]),
                                         _pm(a["best_eval_mean"], a["best_eval_std"]),
                                         "★" if a is best else ""]
    lines.append("| " + " | ".join(cells) + " |")
  if sens:
    cols = [k for k in sens[0] if k not in ("n_lrs", "lr_sensitivity")]
    lines += ["", "LR sensitivity (Wortsman et al. 2023: mean over the swept peak LRs of "
              "min(final eval loss, initial eval loss) minus the best; diverged = initial; "
              "lower is more robust):", "",
              "| " + " | ".join([*(c.split(".")[-1] for c in cols), "LRs", "LR sensitivity"])
              + " |", "|" + "---|" * (len(cols) + 2)]
    for r in sens:
      lines.append("| " + " | ".join([*(str(r[c]) for c in cols), str(r["n_lrs"]),
                                      f"{r['lr_sensitivity']:.4f}"]) + " |")
  return "\n".join(lines) + "\n"


def write_tensorboard(workdir: pathlib.Path, metrics: dict) -> None:
  from tensorboardX import SummaryWriter
  for run_id, rows in metrics.items():
    out = workdir / "tb" / run_id
    shutil.rmtree(out, ignore_errors=True)
    with SummaryWriter(str(out)) as w:
      for r in rows:
        for k, v in r.items():
          if k != "step" and v is not None:
            w.add_scalar(k if k == "eval_loss" else f"train/{k}", v, r["step"])


def _save(fig, path: pathlib.Path, dpi: int = 100, rect=(0, 0, 1, 1)) -> pathlib.Path:
  """Lays out (inside `rect`, leaving room for a figure legend), writes, closes."""
  import matplotlib.pyplot as plt
  fig.tight_layout(rect=rect)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def plot_sweep(workdir: pathlib.Path, loaded, swept, rows, agg) -> list[pathlib.Path]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from warmup_research import config as config_lib, train

  out = workdir / "plots"
  out.mkdir(exist_ok=True)
  written = []
  runs = loaded["record"]["runs"]
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
  for r in runs:
    m = loaded["metrics"][r["run_id"]]
    tr = [(x["step"], x["loss"]) for x in m if "loss" in x]
    ev = [(x["step"], x["eval_loss"]) for x in m if "eval_loss" in x]
    if tr:
      a1.plot(*zip(*tr), lw=0.8, label=r["run_id"])
    if ev:
      a2.plot(*zip(*ev), marker="o", ms=3, lw=0.8, label=r["run_id"])
  a1.set(title="train loss", xlabel="step", ylabel="loss", yscale="log")
  a2.set(title="eval loss", xlabel="updates", ylabel="loss", yscale="log")
  if len(runs) <= 16:
    a2.legend(fontsize=6)
  written.append(_save(fig, out / "loss_curves.png"))

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in runs:
    cfg = config_lib.from_saved(r["config"])
    steps = np.arange(cfg.train.total_steps + 1)
    ax.plot(steps, np.asarray(schedules.schedule(steps, train.hparams(cfg).schedule)),
            lw=0.8, label=r["run_id"])
  ax.set(title="learning-rate schedules of the grid", xlabel="step (0 = first update)",
         ylabel="lr")
  if len(runs) <= 16:
    ax.legend(fontsize=6)
  written.append(_save(fig, out / "lr_schedules.png"))

  if "optimizer.peak_lr" in swept:
    others = [f for f in swept if f not in ("optimizer.peak_lr",) and f.split(".")[-1] != "seed"]
    lines: dict[str, list] = {}
    for a in agg:
      label = ", ".join(f"{f.split('.')[-1]}={a[f]}" for f in others) or "all"
      y = a["final_eval_mean"] if a["diverged"] < a["n"] else None
      lines.setdefault(label, []).append((a["optimizer.peak_lr"], y, a["final_eval_std"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in lines.items():
      pts.sort()
      xs = [p[0] for p in pts]
      ys = [np.nan if p[1] is None else p[1] for p in pts]
      es = [0 if p[2] is None else p[2] for p in pts]
      ax.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=label)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="final eval loss",
           title="LR sensitivity (gaps: every seed diverged)")
    ax.legend(fontsize=7)
    written.append(_save(fig, out / "loss_vs_peak_lr.png"))
  return written


def write(workdir, *, plots: bool = True, tensorboard: bool = True) -> dict:
  wd = pathlib.Path(workdir)
  loaded = load(wd)
  swept, rows = run_rows(loaded)
  agg = aggregate(swept, rows)
  columns = ["run_id", *swept, *RUN_COLUMNS]
  write_atomic(wd / "runs.csv", to_csv(columns, rows))
  sens = lr_sensitivities(swept, rows, agg)
  write_atomic(wd / "summary.md", markdown(loaded, swept, rows, agg, sens))
  groups = loaded["groups"]
  summary = dict(experiment=loaded["record"]["experiment"],
                 command=groups[-1]["command"] if groups else None,
                 written_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                 device=groups[-1]["device"] if groups else None,
                 n_runs=len(rows), n_groups=len(groups),
                 n_compiles=sum(g["train_step_compiles"] for g in groups),
                 groups=groups, runs=rows, aggregated=agg, lr_sensitivity=sens)
  write_atomic(wd / "summary.json", json.dumps(summary, indent=1))
  if tensorboard:
    write_tensorboard(wd, loaded["metrics"])
  if plots:
    plot_sweep(wd, loaded, swept, rows, agg)
  return summary


def plot_analysis(workdir: pathlib.Path, rows: list[dict]) -> pathlib.Path:
  """Sharpness, preconditioned sharpness and its ratio to Adam's stability
  threshold vs step, one line per run, log scale."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  titles = {"sharpness": "sharpness (top eigenvalue of H)",
            "preconditioned_sharpness": "preconditioned sharpness (top eig. of P^-1 H)",
            "stability_ratio": "P^-1 H sharpness x lr / (2 (1 + b1) / (1 - b1))"}
  keys = [k for k in titles if any(k in r for r in rows)]
  run_ids = list(dict.fromkeys(r["run_id"] for r in rows))
  colors = plt.get_cmap("tab20" if len(run_ids) > 10 else "tab10")
  fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.8), squeeze=False)
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
  pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
  _save(fig, pathlib.Path(out_path), dpi=110)
