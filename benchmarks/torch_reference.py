"""A PyTorch eager reference of the quickstart model, measured side by side
with ours.

Not part of warmup_research (torch is not a dependency). It needs torch in
its own environment (the Linux wheel brings its CUDA libraries, about 3 GB,
even for CPU use; the tables name the torch version they ran):

    python -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch numpy
    /tmp/torch-venv/bin/python benchmarks/torch_reference.py \
        --jax-python .venv/bin/python --rounds 5 [--out results/benchmarks/OTHER.md]

Each round runs, in fresh processes one after the other, (1) this file's
PyTorch model (`--torch-only`: median step of `--steps` after 3 warm-up
steps, the same batch each step, as `bench --quick` does) and (2)
`python -m benchmarks.bench --quick` (with --jax-python), then writes
results/benchmarks/torch_reference.md. Alternating matters: a shared VM's
speed drifts from minute to minute.

The model is the quickstart model written the obvious way in PyTorch:
d_model 128, 2 layers, 4 heads, seq 128, batch 32, vocab 256, pre-LN
(LayerNorm eps 1e-6 with scale and bias, and a final one), tied input and
output embeddings, learned positions, no biases in the linear layers, one
[D, 3D] QKV projection, `F.scaled_dot_product_attention(is_causal=True)`,
tanh GELU, MLP ratio 4: 443,648 parameters, as ours. The step is
cross-entropy, backward, clipping at global norm 1.0 and AdamW (b2 0.95,
weight decay 0.1). Ours also computes the z-loss, three norms for the
metrics and the divergence guard every step.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "results" / "benchmarks" / "torch_reference.md"
V, D, LAYERS, HEADS, L, B = 256, 128, 2, 4, 128, 32


def torch_step_seconds(steps: int) -> dict:
  import torch
  import torch.nn.functional as F
  from torch import nn

  class Block(nn.Module):

    def __init__(self):
      super().__init__()
      self.ln_attn, self.ln_mlp = nn.LayerNorm(D, eps=1e-6), nn.LayerNorm(D, eps=1e-6)
      self.qkv = nn.Linear(D, 3 * D, bias=False)
      self.out = nn.Linear(D, D, bias=False)
      self.mlp_in = nn.Linear(D, 4 * D, bias=False)
      self.mlp_out = nn.Linear(4 * D, D, bias=False)

    def forward(self, x_BxLxD):
      b, l, _ = x_BxLxD.shape
      q, k, v = self.qkv(self.ln_attn(x_BxLxD)).view(b, l, 3, HEADS, D // HEADS).permute(
          2, 0, 3, 1, 4)
      o_BxHxLxK = F.scaled_dot_product_attention(q, k, v, is_causal=True)
      x_BxLxD = x_BxLxD + self.out(o_BxHxLxK.transpose(1, 2).reshape(b, l, D))
      h = F.gelu(self.mlp_in(self.ln_mlp(x_BxLxD)), approximate="tanh")
      return x_BxLxD + self.mlp_out(h)

  class LM(nn.Module):

    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(V, D)
      self.pos_LxD = nn.Parameter(0.02 * torch.randn(L, D))
      self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
      self.ln_final = nn.LayerNorm(D, eps=1e-6)

    def forward(self, tokens_BxL):
      x_BxLxD = self.embed(tokens_BxL) + self.pos_LxD[:tokens_BxL.shape[1]]
      for block in self.blocks:
        x_BxLxD = block(x_BxLxD)
      return self.ln_final(x_BxLxD) @ self.embed.weight.T

  torch.manual_seed(0)
  model = LM()
  opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
  batch_BxL1 = torch.randint(0, V, (B, L + 1))

  def step():
    logits = model(batch_BxL1[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, V), batch_BxL1[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()   # waits for the step, as block_until_ready does

  for _ in range(3):
    step()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
  median = statistics.median(times)
  return dict(tokens_per_s=round(B * L / median, 1), step_ms=round(1e3 * median, 2),
              params=sum(p.numel() for p in model.parameters()),
              threads=torch.get_num_threads(), torch=torch.__version__)


def last_json(cmd: list[str]) -> dict:
  out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--jax-python", default=str(REPO / ".venv" / "bin" / "python"))
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--torch-only", action="store_true")
  p.add_argument("--out", default=str(DEFAULT_OUT))
  a = p.parse_args()
  if a.torch_only:
    print(json.dumps(torch_step_seconds(a.steps)))
    return
  rows = []
  for r in range(a.rounds):
    t = last_json([sys.executable, __file__, "--torch-only", "--steps", str(a.steps)])
    j = last_json([a.jax_python, "-m", "benchmarks.bench", "--quick"])
    rows.append((t, j))
    print(f"[round {r + 1}] torch {t['tokens_per_s']:,.0f} tokens/s, "
          f"warmup_research {j['tokens_per_s']:,.0f} tokens/s", flush=True)
  host = last_json([a.jax_python, "-c", "import json; from warmup_research import runtime, "
                    f"workdir; print(json.dumps(dict(cpu=runtime.cpu_model(), "
                    f"code=workdir.code_version({str(REPO)!r}))))"])
  out = pathlib.Path(a.out).resolve()
  shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
  out_flag = "" if out == DEFAULT_OUT else f" --out {shown}"
  med_t = statistics.median(t["tokens_per_s"] for t, _ in rows)
  med_j = statistics.median(j["tokens_per_s"] for _, j in rows)
  lines = [
      "# PyTorch eager reference vs warmup_research, side by side (quickstart model)",
      "",
      f"- command: `{pathlib.Path(sys.executable).name} benchmarks/torch_reference.py "
      f"--rounds {a.rounds} --steps {a.steps}{out_flag}` at code {host['code']}",
      f"- machine: {host['cpu']}, {len(os.sched_getaffinity(0))} cores",
      f"- software: Python {platform.python_version()}, torch {rows[0][0]['torch']} "
      f"({rows[0][0]['threads']} threads); ours: `bench --quick` on "
      f"{rows[0][1]['devices']}, mesh {rows[0][1]['mesh']}",
      f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
      "",
      "Each round: the PyTorch model in a fresh process, then `python -m benchmarks.bench "
      "--quick` in another; tokens/s from the median step time (same batch each "
      "step, after warm-up steps).",
      "",
      "| round | PyTorch eager tokens/s | ms/step | warmup_research tokens/s | ms/step "
      "| ours / PyTorch |",
      "|---|---|---|---|---|---|",
  ]
  for i, (t, j) in enumerate(rows):
    lines.append(f"| {i + 1} | {t['tokens_per_s']:,.0f} | {t['step_ms']:.1f} | "
                 f"{j['tokens_per_s']:,.0f} | {j['step_ms']:.1f} | "
                 f"{j['tokens_per_s'] / t['tokens_per_s']:.2f} |")
  lines += ["", f"Median: PyTorch {med_t:,.0f}, warmup_research {med_j:,.0f} tokens/s "
            f"(ours / PyTorch = {med_j / med_t:.2f})."]
  out.write_text("\n".join(lines) + "\n")
  print(json.dumps(dict(torch_tokens_per_s=med_t, ours_tokens_per_s=med_j)))


if __name__ == "__main__":
  main()
