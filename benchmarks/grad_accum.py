"""Gradient accumulation: the train program's memory with and without it.

    python -m benchmarks.grad_accum [--steps N] [--out-dir DIR]

(from the repository root; writes results/benchmarks/grad_accum.md). For
each size, `train.grad_accum` in {1, 2, 4, 8} at the same batch: XLA's
memory analysis of the compiled train program (one call of the loop's, n =
`loop.steps_per_call` updates), per device: `temp` is the working memory
(activations, gradients, the scan's carries), `args` the state and batches
passed in, `total` their sum with the outputs not aliased to the inputs
(what the program holds at most, as the buffer assignment plans it). They
are what the compiler planned, the same on every run of the same program,
so one compile per row measures them; ms/step is the median of `steps`
calls after 3 warm-up calls (the same batch each update), divided by n.
"""
from __future__ import annotations

import pathlib
import statistics
import sys

from benchmarks.bench import _base, _program, _write, call_timer, command, header

ACCUM = (1, 2, 4, 8)
SIZES = {
    "quickstart d128 L2 seq128 b32": {},
    "d256 L4 seq256 b32": {"model.d_model": 256, "model.num_layers": 4, "model.num_heads": 4,
                           "data.seq_len": 256},
}


def memory(cfg, steps: int) -> dict:
  """The compiled train program's memory analysis (bytes per device) and
  its ms per update."""
  from warmup_research import data, loop  # after main's setup_process (XLA's flags)
  prog, shape = _program([cfg])
  n = loop.steps_per_call(cfg.train)
  _, call = call_timer(prog, prog.init(prog.keys, prog.hp), data.Batches(cfg).train(0), n)
  m = call.steps.memory_analysis()
  total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes)
  return dict(mesh=f"{shape[0]}x{shape[1]}", temp=m.temp_size_in_bytes,
              args=m.argument_size_in_bytes, total=total,
              step_ms=statistics.median(call() for _ in range(steps)) * 1e3)


def measure(sizes=None, accums=ACCUM, steps: int = 10) -> list[dict]:
  rows = []
  for name, overrides in (sizes or SIZES).items():
    for k in accums:
      cfg = _base({**overrides, "train.grad_accum": k})
      rows.append(dict(size=name, grad_accum=k, batch=cfg.data.batch_size,
                       **memory(cfg, steps)))
  return rows


def write_table(rows, out: pathlib.Path, command: str, steps: int) -> None:
  mib = lambda b: f"{b / 2**20:,.1f}"   # noqa: E731
  lines = header("Gradient accumulation: memory and step time", command) + [
      "", "XLA's memory analysis of the compiled train program (one call of the loop's), per "
      "device, MiB: `temp` working memory, `args` state and batches in, `total` with the "
      "outputs; `temp vs 1`: temp over the same size without accumulation. ms/step: median "
      f"of {steps} calls / updates per call. See benchmarks/grad_accum.py.", "",
      "| size | batch | grad_accum | mesh | temp MiB | temp vs 1 | args MiB | total MiB "
      "| ms/step |", "|---|---|---|---|---|---|---|---|---|"]
  base = {r["size"]: r["temp"] for r in rows if r["grad_accum"] == 1}
  for r in rows:
    ratio = f"{r['temp'] / base[r['size']]:.2f}x" if base.get(r["size"]) else "-"
    lines.append(f"| {r['size']} | {r['batch']} | {r['grad_accum']} | {r['mesh']} "
                 f"| {mib(r['temp'])} | {ratio} | {mib(r['args'])} | {mib(r['total'])} "
                 f"| {r['step_ms']:.1f} |")
  _write(out, lines)


def main() -> None:
  args = command("python -m benchmarks.grad_accum", __doc__, "steps", 10, "timed calls per row")
  write_table(measure(steps=args.steps), pathlib.Path(args.out_dir) / "grad_accum.md",
              " ".join(["python -m benchmarks.grad_accum", *sys.argv[1:]]), args.steps)


if __name__ == "__main__":
  main()
