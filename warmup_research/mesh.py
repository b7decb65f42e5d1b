"""Device mesh, shardings, host devices and jax.distributed start-up.

One 2-D mesh over every device of every process, axes `('variant', 'data')`:
a compile group's stacked variants are sharded over `variant` (padded up to a
multiple of its size), each step's batch over `data` (XLA inserts the
gradient all-reduce). This is the modern form of `pmap`: `jax.jit` with
`NamedSharding`s; several hosts use the same mesh after
`jax.distributed.initialize()`.

`config.mesh.variant` / `config.mesh.data` choose the shape; 0 means "pick":
with vmapped variants (accelerators), the variant-axis size (a divisor of
the device count) that wastes the fewest padded variants, larger first, with
the rest on `data` (which must divide the batch); with mapped variants (CPU,
see loop.variant_loop), the largest data axis that divides the batch: on 2
CPU cores, K = 2 quickstart variants took 288 ms/step on 1 x 2 and 354 ms on
2 x 1, and from K = 8 on the two were equal. A shape that does not fit the
devices is a ConfigError.
"""
from __future__ import annotations

import math
import os

from warmup_research.errors import ConfigError

AXES = ("variant", "data")


def set_host_device_count(n: int | None = None) -> None:
  """Before jax is imported: expose one XLA CPU device per core (default).

  Leaves an explicit --xla_force_host_platform_device_count alone. Only the
  CPU backend reads it, so it is harmless on GPU machines.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in flags:
    return
  if not n:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


# XLA CPU flags measured to help the train step (results/benchmarks/NOTES.md):
# hand dots AND reductions to YNNPACK. Default jaxlib 0.10 also sends
# elementwise fusions there, which on this model was slower. It cut the
# quickstart step by 10-15% on 2 cores (NOTES.md attempts 3 and 10).
CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type="
             "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE",)


def set_cpu_flags() -> None:
  """Before jax is imported: adds CPU_FLAGS unless XLA_FLAGS already sets them.

  WARMUP_RESEARCH_XLA_CPU_DEFAULTS=0 leaves XLA's own defaults (what the
  benchmarks compare against)."""
  if os.environ.get("WARMUP_RESEARCH_XLA_CPU_DEFAULTS", "1") == "0":
    return
  flags = os.environ.get("XLA_FLAGS", "")
  for flag in CPU_FLAGS:
    if flag.split("=")[0] not in flags:
      flags = f"{flags} {flag}".strip()
  os.environ["XLA_FLAGS"] = flags


def maybe_initialize_distributed() -> None:
  """Starts jax.distributed when launched as several processes.

  `launch.sh --procs N` sets WR_COORDINATOR / WR_NUM_PROCESSES / WR_PROCESS_ID;
  under SLURM (`srun`), JAX detects the cluster itself.
  """
  import jax
  if os.environ.get("WR_NUM_PROCESSES"):
    n = int(os.environ["WR_NUM_PROCESSES"])
    if n > 1:
      jax.distributed.initialize(coordinator_address=os.environ["WR_COORDINATOR"],
                                 num_processes=n, process_id=int(os.environ["WR_PROCESS_ID"]),
                                 initialization_timeout=120)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_ID" in os.environ:
    jax.distributed.initialize()


def choose_shape(n_devices: int, n_variants: int, batch_size: int,
                 variant: int = 0, data: int = 0, prefer_data: bool = False) -> tuple[int, int]:
  """(variant, data) axis sizes; 0 = pick. Checked against the devices.

  Picking: the variant-axis size that pads the fewest variants, larger
  first; or, with `prefer_data` (variants mapped one after another, as on
  CPU, where padding costs a whole run), the largest data axis that divides
  the batch."""
  if variant < 0 or data < 0:
    raise ConfigError("config.mesh", f"axis sizes must be >= 0 (0 = pick), got "
                      f"variant={variant}, data={data}")
  if variant and data:
    if variant * data != n_devices:
      raise ConfigError("config.mesh", f"variant x data = {variant} x {data} = {variant * data} "
                        f"does not fit the {n_devices} devices; their product must be "
                        f"{n_devices} (or set one to 0 to pick)")
  elif variant or data:
    given = variant or data
    if n_devices % given:
      raise ConfigError("config.mesh", f"{'variant' if variant else 'data'}={given} does not "
                        f"divide the {n_devices} devices; allowed: "
                        f"{', '.join(str(d) for d in _divisors(n_devices))}")
    variant, data = (variant, n_devices // variant) if variant else (n_devices // data, data)
  else:
    options = [v for v in _divisors(n_devices) if batch_size % (n_devices // v) == 0]
    if prefer_data:
      variant = min(options)
    else:
      variant = min(options, key=lambda v: (math.ceil(n_variants / v) * v, -v))
    data = n_devices // variant
  if batch_size % data:
    raise ConfigError("config.mesh.data", f"data axis {data} must divide data.batch_size "
                      f"({batch_size})")
  return variant, data


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def make(variant: int, data: int):
  import jax
  devices = jax.devices()
  if variant * data != len(devices):
    raise ConfigError("config.mesh", f"{variant} x {data} does not fit {len(devices)} devices")
  return jax.make_mesh((variant, data), AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def shardings(mesh):
  """(per-variant, batch, replicated) NamedShardings of a mesh."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  return (NamedSharding(mesh, P("variant")), NamedSharding(mesh, P("data")),
          NamedSharding(mesh, P()))


def to_global(tree, sharding):
  """Host numpy arrays (the same in every process) -> global jax.Arrays."""
  import jax
  import numpy as np
  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
  return jax.tree.map(put, tree)


def describe(mesh) -> dict:
  """The devices, processes, mesh shape and host CPU a result was made on."""
  import jax
  from warmup_research.host import cpu_model
  d = jax.devices()[0]
  return dict(platform=d.platform, device_kind=d.device_kind, n_devices=jax.device_count(),
              n_processes=jax.process_count(), mesh=dict(zip(mesh.axis_names,
                                                             mesh.devices.shape)),
              host=cpu_model())
