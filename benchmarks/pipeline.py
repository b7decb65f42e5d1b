"""Data pipeline throughput: tokens per second from a prepared corpus into
device batches, alone and beside the train step.

    python -m benchmarks.pipeline [--calls N] [--out-dir DIR]

(from the repository root; writes results/benchmarks/pipeline.md). Rows are
a source and tokenizer (the byte corpus of Python's sources; English prose
under a byte-level BPE of 4096 tokens) at a row size: the quickstart's
(batch 32 x seq 128) and a GPU run's (batch 32 x seq 1024). Tokens are
counted as the train step counts them, batch x seq per update.

- `host`: `Batches.train_steps(first, n)`, the numpy batches of one call of
  the loop's program (n = `loop.steps_per_call` updates), over `calls`
  consecutive calls from a fresh `Batches` (the first call, which opens the
  files, untimed).
- `to device`: the same, put on the mesh as the loop puts them
  (`GroupProgram.train_batches`, blocked until ready).
- `beside the step` (quickstart row size, that source's quickstart model):
  the loop's order, which hides loading behind compute: dispatch call t's
  compiled train program, build and put call t+1's batches, wait for call
  t. `loader` is the tokens/s of the loading alone in that loop, `step` the
  train step's consumption (tokens/s of the loop's calls), `x` their ratio;
  `slow-down` is the loop's time per call over the same program's with one
  fixed batch put once (each a median over the calls; what loading costs
  the step on this machine: on a GPU host the loader and the step do not
  share the cores).
"""
from __future__ import annotations

import pathlib
import statistics
import sys
import time

from benchmarks.bench import QUICKSTART, _program, _write, call_timer, command, header

BPE = "bpe:4096"
# (source, tokenizer, batch, seq, beside the step?)
ROWS = [("bytes", "bytes", 32, 128, True), ("prose", BPE, 32, 128, True),
        ("bytes", "bytes", 32, 1024, False), ("prose", BPE, 32, 1024, False)]


def config(name: str, tokenizer: str, batch: int, seq: int, overrides=None):
  """The quickstart config on `name` under `tokenizer` at batch x seq (and
  `overrides`)."""
  # after main's setup_process: XLA reads its flags when jax is first imported
  from warmup_research import config as config_lib
  from warmup_research import text
  o = {"data.name": name, "data.tokenizer": tokenizer, "data.batch_size": batch,
       "data.seq_len": seq}
  if tokenizer != "bytes":
    o["model.vocab_size"] = text.bpe_vocab(tokenizer)
  return config_lib.apply_overrides(config_lib.load(QUICKSTART), {**o, **(overrides or {})})


def loader_rate(cfg, calls: int, prog=None) -> float:
  """Tokens/s of `calls` consecutive calls' train batches: host numpy
  arrays, or (with `prog`, a GroupProgram of cfg) device arrays."""
  import jax  # here and below: after main's setup_process (XLA reads its flags at import)

  from warmup_research import data, loop
  batches, n = data.Batches(cfg), loop.steps_per_call(cfg.train)

  def one(t):
    if prog is None:
      return batches.train_steps(t, n)
    return jax.block_until_ready(prog.train_batches(batches, t, n))
  one(0)
  t0 = time.perf_counter()
  for c in range(1, calls + 1):
    one(c * n)
  return calls * n * cfg.data.batch_size * cfg.data.seq_len / (time.perf_counter() - t0)


def beside_step(cfg, calls: int, prog) -> dict:
  """The loop's order (see the module docstring): loader and step tokens/s,
  and the slow-down against the same program fed one fixed batch."""
  import jax  # here and below: after main's setup_process (XLA reads its flags at import)

  from warmup_research import data, loop
  batches, n = data.Batches(cfg), loop.steps_per_call(cfg.train)
  tokens = n * cfg.data.batch_size * cfg.data.seq_len
  _, alone = call_timer(prog, prog.init(prog.keys, prog.hp), batches.train(0), n)
  per_call_alone = statistics.median(alone() * n for _ in range(calls))
  steps, state = alone.steps, prog.init(prog.keys, prog.hp)
  loading, fed, nxt = [], [], prog.train_batches(batches, n, n)
  for c in range(1, calls + 1):
    t0 = time.perf_counter()
    state, _m = steps(state, nxt, prog.hp)
    t1 = time.perf_counter()
    nxt = jax.block_until_ready(prog.train_batches(batches, (c + 1) * n, n))
    loading.append(time.perf_counter() - t1)
    jax.block_until_ready(state)
    fed.append(time.perf_counter() - t0)
  per_call = statistics.median(fed)
  return dict(loader=tokens / statistics.median(loading), step=tokens / per_call,
              slowdown=per_call / per_call_alone - 1)


def measure(rows=ROWS, calls: int = 50, overrides=None) -> list[dict]:
  from warmup_research import data  # after main's setup_process (see `config`)
  out = []
  for name, tokenizer, batch, seq, beside in rows:
    cfg = config(name, tokenizer, batch, seq, overrides)
    data.Batches(cfg)   # prepares the corpus (once per data dir), outside the timing
    prog, shape = _program([cfg])
    r = dict(source=name, tokenizer=tokenizer, batch=batch, seq=seq,
             mesh=f"{shape[0]}x{shape[1]}", host=loader_rate(cfg, calls),
             device=loader_rate(cfg, calls, prog))
    if beside:
      r.update(beside_step(cfg, calls, prog))
    out.append(r)
  return out


def write_table(rows, out: pathlib.Path, command: str, calls: int) -> None:
  def k(x):
    return f"{x / 1e3:,.0f}k"
  lines = header("Data pipeline throughput", command) + [
      "", f"Tokens per second (batch x seq per update), {calls} consecutive calls of the loop's "
      "train batches per row; `host`: numpy batches; `to device`: put on the mesh; beside the "
      "step: the loop's order at that source's quickstart model (`loader`: loading's own "
      "tokens/s there, `step`: the train step's consumption, `x`: loader / step, `slow-down`: "
      "time per call over the same program fed a fixed batch). See benchmarks/pipeline.py.", "",
      "| source | tokenizer | batch x seq | mesh | host tokens/s | to device tokens/s "
      "| beside the step: loader | step | x | slow-down |",
      "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    side = (f"{k(r['loader'])} | {k(r['step'])} | {r['loader'] / r['step']:.0f}x | "
            f"{r['slowdown']:+.1%}" if "loader" in r else "- | - | - | -")
    lines.append(f"| {r['source']} | {r['tokenizer']} | {r['batch']} x {r['seq']} | {r['mesh']} "
                 f"| {k(r['host'])} | {k(r['device'])} | {side} |")
  _write(out, lines)


def main() -> None:
  args = command("python -m benchmarks.pipeline", __doc__, "calls", 50, "timed calls per row")
  rows = measure(calls=args.calls)
  write_table(rows, pathlib.Path(args.out_dir) / "pipeline.md",
              " ".join(["python -m benchmarks.pipeline", *sys.argv[1:]]), args.calls)


if __name__ == "__main__":
  main()
