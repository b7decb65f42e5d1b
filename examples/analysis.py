# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Analysing a sweep
#
# Run the quickstart grid first (`./launch.sh`), then run this file
# (`.venv/bin/python examples/analysis.py`) or open it as a notebook
# (`jupytext --to notebook examples/analysis.py`). `WR_WORKDIR` points it at
# another sweep; `WR_OUT` is where its figures go (default: the sweep's
# `plots/`). The test suite runs it on a tiny sweep, so it stays working.

# %%
import os
import pathlib

from matplotlib.figure import Figure

from warmup_research import analysis, data

WORKDIR = pathlib.Path(os.environ.get("WR_WORKDIR", "results/quickstart"))
OUT = pathlib.Path(os.environ.get("WR_OUT", WORKDIR / "plots"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Every run's curves as one table
#
# `load_metrics` returns one row per (run, step, split); the swept values are
# columns, so pandas does the grouping.

# %%
df = analysis.load_metrics(WORKDIR)
swept = list(df.columns[1:df.columns.get_loc("split")])
print(f"{df.run_id.nunique()} runs, swept: {swept}")
evals = df[df.split == "eval"]
print(evals.groupby(swept)["loss"].last().unstack(swept[-1]) if swept else evals.tail())

# %%
fig = Figure(figsize=(8, 4.5), layout="constrained")
ax = fig.subplots()
for run_id, curve in evals.groupby("run_id"):
  ax.plot(curve.step, curve.loss, marker="o", ms=3, label=run_id)
ax.set(xlabel="updates", ylabel="eval loss (nats per token)", yscale="log",
       title="eval loss of every run")
fig.legend(loc="outside right upper", fontsize=7)
fig.savefig(OUT / "example_eval_curves.png", dpi=100)

# %% [markdown]
# ## One run, picked by its values
#
# `load_run` takes the swept values (numbers compared as numbers) and restores
# that run's params and optimizer state from its group's checkpoint.

# %%
best = analysis.list_runs(WORKDIR).sort_values("final_eval_loss").iloc[0]
values = {name: best[name] for name in swept}   # runs.csv and load_metrics name fields alike
run = analysis.load_run(WORKDIR, **values)
print(values)
print(run)
print(run.eval.tail(3))

# %% [markdown]
# ## Its sharpness
#
# The top eigenvalue of the loss Hessian on a fixed validation batch (Lanczos
# on Hessian-vector products) and, for Adam-family runs, of P^-1 H with P
# Adam's preconditioner (Kalra & Barkeshli 2024).

# %%
batch = data.Batches(run.config).eval(0)
print(f"sharpness {analysis.sharpness(run, batch, iters=10):.4g}")
if run.config.optimizer.name in ("adam", "adamw", "gi_adam", "gi_adam_bc"):
  print(f"preconditioned sharpness {analysis.preconditioned_sharpness(run, batch, iters=10):.4g}")
