"""The host machine, named in every result: its CPU model and the ISA
features that change which kernels XLA (and PyTorch) pick.

Results are bit-for-bit reproducible for a fixed code version, mesh and CPU
model, not across CPU models (XLA:CPU and its YNNPACK kernels choose code for
the host), and the 2-core VMs of this project came as an Intel Xeon without
AMX, an AMD EPYC and an Intel Xeon with AMX, all reporting similar model
names (results/benchmarks/NOTES.md attempt 43). No JAX import:
results/benchmarks/torch_reference.py uses it too.
"""
from __future__ import annotations

import platform

CPU_FEATURES = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name and its CPU_FEATURES, e.g. 'Intel(R) Xeon(R)
  Processor (AVX-512, AVX512-BF16, AMX)'."""
  name, flags = None, set()
  try:
    for line in open(cpuinfo):
      key, _, value = line.partition(":")
      if key.strip() == "model name" and name is None:
        name = value.strip()
      elif key.strip() == "flags" and not flags:
        flags = set(value.split())
  except OSError:
    pass
  name = name or platform.processor() or "unknown"
  have = [label for flag, label in CPU_FEATURES if flag in flags]
  return f"{name} ({', '.join(have)})" if have else name
