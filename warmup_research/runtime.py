"""Process set-up, in one place: what must happen before jax is imported
(XLA flags, host device count, GC thresholds), what must happen right after
(jax.distributed, the persistent compilation cache), and the host's name.

The CLI (`python -m warmup_research`, `warmup-research`) and the benchmarks
call `setup_process()` first. This module imports jax only inside the
functions that run after the flags are set.
"""
from __future__ import annotations

import gc
import hashlib
import os
import pathlib
import platform

from warmup_research.errors import ConfigError

# Python's cyclic GC at its default thresholds (700, 10, 10) re-scans the
# long-lived objects of jax, flax, orbax and tfds hundreds of times while a
# process imports them and traces its programs; these keep collections on
# (a sweep's traced programs must still be freed) but rare. Measured effect:
# benchmarks/NOTES.md, attempt 39.
GC_THRESHOLDS = (20_000, 100, 100)

# Hand XLA:CPU's dots and reductions to YNNPACK (not its elementwise fusions,
# which were slower on this model: benchmarks/NOTES.md, attempts 3 and 10).
CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type="
             "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE",)

# Host CPU features that change which kernels XLA picks, so results name them.
CPU_FEATURES = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))


def setup_process() -> None:
  """Before jax is imported: one CPU device per core, CPU_FLAGS, GC_THRESHOLDS."""
  set_host_device_count()
  set_cpu_flags()
  gc.set_threshold(*GC_THRESHOLDS)


def set_host_device_count(n: int | None = None) -> None:
  """Exposes n XLA CPU devices (default: one per core) unless XLA_FLAGS sets
  a count already. Only the CPU backend reads it."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in flags:
    return
  if not n:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def set_cpu_flags() -> None:
  """Adds CPU_FLAGS unless XLA_FLAGS sets them; WARMUP_RESEARCH_XLA_CPU_DEFAULTS=0
  keeps XLA's own defaults (what the benchmarks compare against)."""
  if os.environ.get("WARMUP_RESEARCH_XLA_CPU_DEFAULTS", "1") == "0":
    return
  flags = os.environ.get("XLA_FLAGS", "")
  for flag in CPU_FLAGS:
    if flag.split("=")[0] not in flags:
      flags = f"{flags} {flag}".strip()
  os.environ["XLA_FLAGS"] = flags


def default_cache_dir() -> str:
  return os.environ.get("WARMUP_RESEARCH_JAX_CACHE",
                        str(pathlib.Path.home() / ".cache" / "warmup_research" / "jax_cache"))


def start_jax(cache_dir: str) -> None:
  """After the flags: jax.distributed (several processes), then the
  persistent compilation cache at `cache_dir` ('' turns it off)."""
  maybe_initialize_distributed()
  enable_compilation_cache(cache_dir)


def enable_compilation_cache(cache_dir: str) -> None:
  import jax  # after setup_process: XLA reads its flags when jax is imported
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def maybe_initialize_distributed() -> None:
  """Starts jax.distributed when launched as several processes:
  `launch.sh --procs N` sets WR_COORDINATOR / WR_NUM_PROCESSES /
  WR_PROCESS_ID; under SLURM (`srun`), JAX detects the cluster itself."""
  import jax  # after setup_process: XLA reads its flags when jax is imported
  if os.environ.get("WR_NUM_PROCESSES"):
    n = int(os.environ["WR_NUM_PROCESSES"])
    if n > 1:
      jax.distributed.initialize(coordinator_address=os.environ["WR_COORDINATOR"],
                                 num_processes=n, process_id=int(os.environ["WR_PROCESS_ID"]),
                                 initialization_timeout=120)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_ID" in os.environ:
    jax.distributed.initialize()


def barrier(name: str) -> None:
  """All processes meet here (a no-op with one process)."""
  import jax  # after setup_process: XLA reads its flags when jax is imported
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # after setup_process, as jax above
    multihost_utils.sync_global_devices(name)


def agree(error: Exception | None, fingerprint: str = "") -> None:
  """All processes meet here with their outcome so far: if any failed, every
  one stops at once (the one that failed with its own error), and processes
  whose `fingerprint` (their config) differs from process 0's are refused.
  One process: just raises `error`."""
  import jax  # after setup_process: XLA reads its flags when jax is imported
  if jax.process_count() == 1:
    if error is not None:
      raise error
    return
  import numpy as np  # only with several processes, as multihost_utils
  from jax.experimental import multihost_utils  # after setup_process, as jax above
  digest = int(hashlib.sha256(fingerprint.encode()).hexdigest()[:7], 16)
  mine = np.array([error is not None, digest], np.int32)
  everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
  if error is not None:
    raise error
  failed = [i for i, (bad, _) in enumerate(everyone) if bad]
  if failed:
    raise ConfigError("--procs", f"process(es) {', '.join(map(str, failed))} stopped on bad "
                      "input (their error line says which); every process stops")
  differ = [i for i, (_, d) in enumerate(everyone) if d != everyone[0][1]]
  if differ:
    raise ConfigError("--procs", f"process(es) {', '.join(map(str, differ))} got a different "
                      "config than process 0; start every process with the same command")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name and its CPU_FEATURES, e.g. 'Intel(R) Xeon(R)
  Processor (AVX-512, AVX512-BF16, AMX)'. Results are bit-identical only
  within one CPU model: XLA:CPU picks its kernels for the host."""
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
