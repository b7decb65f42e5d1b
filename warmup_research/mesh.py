"""Device mesh and shardings.

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
see `variant_loop`), the largest data axis that divides the batch (faster on
CPU for small K; benchmarks/NOTES.md). With `train.grad_accum` k, each data
shard's rows must split into k microbatches too. A shape that does not fit the
devices or the batch is a ConfigError.
"""
from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from warmup_research import runtime
from warmup_research.errors import ConfigError

AXES = ("variant", "data")


def variant_loop(cfg) -> str:
  """'vmap' or 'map': `mesh.variant_loop`, with 'auto' = map on CPU, where a
  vmapped step's batched matmuls ran slower than K plain ones (see
  benchmarks/NOTES.md); accelerators want the batched form."""
  how = cfg.mesh.variant_loop
  if how == "auto":
    how = "map" if jax.devices()[0].platform == "cpu" else "vmap"
  return how


def memory_limit_bytes() -> int | None:
  """Memory of one device: its allocator's limit, or (CPU) the host's RAM."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"])
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def check_fits(cfgs, estimate_bytes: int, field: str = "config.model") -> None:
  """Refuses a group whose memory estimate exceeds a device's memory."""
  limit = memory_limit_bytes()
  if limit and estimate_bytes > limit:
    raise ConfigError(field, f"the model needs about {estimate_bytes / 2**30:.1f} GiB "
                      f"({len(cfgs)} variant(s): params, optimizer state, activations), more "
                      f"than the {limit / 2**30:.1f} GiB of a {jax.devices()[0].platform} "
                      "device; shrink the model (vocab_size, d_model, num_layers), the batch, "
                      "or the grid")


def group_shape(cfgs) -> tuple[int, int]:
  """The (variant, data) mesh of a compile group: `config.mesh`, else picked."""
  c = cfgs[0]
  return choose_shape(jax.device_count(), len(cfgs), c.data.batch_size,
                      c.mesh.variant, c.mesh.data, prefer_data=variant_loop(c) == "map",
                      grad_accum=c.train.grad_accum)


def choose_shape(n_devices: int, n_variants: int, batch_size: int,
                 variant: int = 0, data: int = 0, prefer_data: bool = False,
                 grad_accum: int = 1) -> tuple[int, int]:
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
    options = [v for v in _divisors(n_devices)
               if batch_size % (n_devices // v * grad_accum) == 0] or [n_devices]
    if prefer_data:
      variant = min(options)
    else:
      variant = min(options, key=lambda v: (math.ceil(n_variants / v) * v, -v))
    data = n_devices // variant
  check_batch_split(batch_size, data, grad_accum)
  return variant, data


def check_batch_split(batch_size: int, data: int, grad_accum: int = 1) -> None:
  """The batch splits into `data` equal shards, each into `grad_accum`
  equal microbatches (a shard's share of each; see `train.Trainer`)."""
  if batch_size % data:
    raise ConfigError("config.mesh.data", f"data axis {data} must divide data.batch_size "
                      f"({batch_size})")
  rows = batch_size // data
  if rows % grad_accum:
    raise ConfigError("config.train.grad_accum", f"must divide each data shard's rows "
                      f"(data.batch_size {batch_size} / mesh data axis {data} = {rows}) into "
                      f"equal microbatches, got {grad_accum}; allowed: "
                      f"{', '.join(str(k) for k in _divisors(rows))} (or a smaller data axis)")


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def make(variant: int, data: int, devices=None):
  """The (variant, data) mesh over `devices` (default: every device)."""
  n = len(jax.devices() if devices is None else devices)
  if variant * data != n:
    raise ConfigError("config.mesh", f"{variant} x {data} does not fit {n} devices")
  return jax.make_mesh((variant, data), AXES, devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def shardings(mesh):
  """(per-variant, batch, replicated) NamedShardings of a mesh."""
  return (NamedSharding(mesh, P("variant")), NamedSharding(mesh, P("data")),
          NamedSharding(mesh, P()))


def to_global(tree, sharding):
  """Host numpy arrays (the same in every process) -> global jax.Arrays."""
  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
  return jax.tree.map(put, tree)


def describe(mesh) -> dict:
  """The devices, processes, mesh shape and host CPU a result was made on."""
  d = jax.devices()[0]
  return dict(platform=d.platform, device_kind=d.device_kind, n_devices=jax.device_count(),
              n_processes=jax.process_count(), mesh=dict(zip(mesh.axis_names,
                                                             mesh.devices.shape)),
              host=runtime.cpu_model())
