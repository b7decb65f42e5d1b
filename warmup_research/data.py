"""Datasets through TFDS (no TensorFlow needed), as batches that are a pure
function of (data seed, step).

Three sources, chosen by `config.data.name`:

* `'bytes'` (the offline default): a byte-level text corpus built by the TFDS
  builder `ByteCorpus` from a local directory of text files (by default the
  Python standard library's own `*.py` sources: real text on every machine).
  Files are split into train/validation by a hash of their relative path (1 in
  20 to validation), joined with NUL separators, and cut into records of
  `RECORD_LEN` bytes, prepared once as ArrayRecord into the data dir and read
  by random access with `tfds.data_source`. A row is a random window of
  `seq_len + 1` bytes from a random record.
* `'synthetic'`: a copy task (a random prefix, then the prefix again), made on
  the fly; a model that learns in-context copying drives its loss well down.
* any other name: a TFDS catalog dataset (e.g. `'lm1b'`) that the user has
  prepared as ArrayRecord in the data dir (`_catalog_builder` and
  `_split_source` say what is missing otherwise: the preparation, the format,
  or the split). Rows are packed: from a random record on, texts (UTF-8 bytes
  of `data.text_key`) joined by NUL until the row is full.

Every batch is `[batch_size, seq_len + 1]` int32 (inputs are `[:, :-1]`,
targets `[:, 1:]`), drawn by `numpy.random.default_rng((seed, stream, step))`,
so resuming, re-running, or running one variant alone sees the same data.
The train stream's seed is `data.seed`, or the run's `seed` when that is
None (the default), so one seed draws a replicate's init AND data order; the
eval batches are the same for every seed (EVAL_SEED), so replicates are
compared on one validation set.

`unigram_entropy` (nats per token) is the loss of a model that knows only
token frequencies: a run whose loss stays near it learned nothing beyond
them (a stalled run). The byte corpus computes it once, over its train
split, and stores it in the prepared dataset's metadata.
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import stat
import sys
import sysconfig
from typing import NamedTuple

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from warmup_research.errors import ConfigError

tfds.display_progress_bar(False)
absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS's per-build chatter

RECORD_LEN = 1025          # bytes per record: windows of up to 1024 + 1
TEXT_SUFFIXES = (".py", ".txt", ".md", ".rst")
SKIP_DIRS = ("site-packages", "dist-packages", "__pycache__")
VALIDATION_EVERY = 20      # 1 file in 20 (by path hash) goes to validation
TRAIN_STREAM, EVAL_STREAM = 0, 1
EVAL_SEED = 0              # the validation batches do not depend on the run's seed
CATALOG_ENTROPY_RECORDS = 2000  # records a catalog dataset's unigram entropy is estimated on


def data_seed(cfg) -> int:
  """The train stream's seed: `data.seed`, or the run's `seed` when None."""
  return cfg.seed if cfg.data.get("seed") is None else cfg.data.seed


def entropy_of_counts(counts) -> float:
  """Shannon entropy (nats) of a histogram."""
  p = np.asarray(counts, np.float64)
  p = p[p > 0] / p.sum()
  return float(-(p * np.log(p)).sum())


def default_data_dir() -> pathlib.Path:
  env = os.environ.get("WARMUP_RESEARCH_DATA_DIR")
  if env:
    return pathlib.Path(env)
  return pathlib.Path.home() / ".cache" / "warmup_research" / "tensorflow_datasets"


def default_corpus_dir() -> pathlib.Path:
  return pathlib.Path(sysconfig.get_paths()["stdlib"])


class CorpusFile(NamedTuple):
  rel: str    # path relative to the corpus directory, '/'-separated
  path: str
  size: int   # bytes, when scanned


def corpus_files(corpus_dir: str | os.PathLike) -> list[CorpusFile]:
  """The text files of a corpus directory, sorted by relative path.

  Every process that opens the dataset pays this scan, so skipped and hidden
  directories are pruned before descending and each file is stat-ed once
  (benchmarks/NOTES.md, attempt 40).
  """
  corpus_dir = os.fspath(corpus_dir)
  files = []
  for root, dirs, names in os.walk(corpus_dir):
    dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
    rel_root = os.path.relpath(root, corpus_dir).replace(os.sep, "/")
    for name in names:
      if name.startswith(".") or os.path.splitext(name)[1] not in TEXT_SUFFIXES:
        continue
      path = os.path.join(root, name)
      try:
        st = os.stat(path)
      except OSError:   # a dangling link
        continue
      if stat.S_ISREG(st.st_mode):
        files.append(CorpusFile(name if rel_root == "." else f"{rel_root}/{name}", path,
                                st.st_size))
  return sorted(files)


def _is_validation(rel_path: str) -> bool:
  return int(hashlib.sha1(rel_path.encode()).hexdigest(), 16) % VALIDATION_EVERY == 0


class ByteCorpusConfig(tfds.core.BuilderConfig):

  def __init__(self, *, corpus_dir: pathlib.Path, **kw):
    super().__init__(**kw)
    self.corpus_dir = corpus_dir


class ByteCorpus(tfds.core.GeneratorBasedBuilder):
  """Byte-level text corpus from a local directory, records of RECORD_LEN bytes."""

  VERSION = tfds.core.Version("1.1.0")   # 1.1.0: stores the unigram entropy

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Byte-level text of {self.builder_config.corpus_dir}",
        features=tfds.features.FeaturesDict(
            {"bytes": tfds.features.Tensor(shape=(RECORD_LEN,), dtype=np.uint8)}),
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager
    train = self._stream(False)
    self.info.metadata["unigram_entropy"] = entropy_of_counts(
        np.bincount(train[:len(train) // RECORD_LEN * RECORD_LEN], minlength=256))
    return {"train": self._generate_examples(train),
            "validation": self._generate_examples(self._stream(True))}

  def _stream(self, validation: bool) -> np.ndarray:
    chunks = []
    for f in corpus_files(self.builder_config.corpus_dir):
      if _is_validation(f.rel) == validation:
        chunks.append(pathlib.Path(f.path).read_bytes().replace(b"\0", b" ") + b"\0")
    return np.frombuffer(b"".join(chunks), np.uint8)

  def _generate_examples(self, stream: np.ndarray):
    for i in range(len(stream) // RECORD_LEN):
      yield i, {"bytes": stream[i * RECORD_LEN:(i + 1) * RECORD_LEN]}


def _config_name(corpus_dir: pathlib.Path, files: list[CorpusFile]) -> str:
  """A name that changes when the directory, its file list or a file's size
  changes, so an edited corpus is rebuilt rather than read stale."""
  h = hashlib.sha1(str(corpus_dir.resolve()).encode())
  for f in files:
    h.update(f"{f.rel}:{f.size}\n".encode())
  return f"dir_{h.hexdigest()[:12]}"


def build_byte_corpus(corpus_dir: str | os.PathLike | None,
                      data_dir: str | os.PathLike | None) -> tfds.core.DatasetBuilder:
  """Prepares (once) and returns the ByteCorpus builder for `corpus_dir`."""
  corpus = pathlib.Path(corpus_dir) if corpus_dir else default_corpus_dir()
  if not corpus.is_dir():
    raise ConfigError("config.data.corpus_dir", f"not a directory: {corpus}")
  files = corpus_files(corpus)
  if not files:
    raise ConfigError("config.data.corpus_dir", f"no text files ({', '.join(TEXT_SUFFIXES)}) "
                      f"under {corpus}")
  split_bytes = [0, 0]
  for f in files:
    split_bytes[_is_validation(f.rel)] += f.size + 1
  for split, n in zip(("train", "validation"), split_bytes):
    if n < RECORD_LEN:
      raise ConfigError("config.data.corpus_dir", f"{corpus} has too little text for a "
                        f"{split} split ({n} bytes; needs at least {RECORD_LEN}; files go "
                        f"to validation by a hash of their path, 1 in {VALIDATION_EVERY})")
  data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir()
  try:
    data_dir.mkdir(parents=True, exist_ok=True)
    builder = ByteCorpus(config=ByteCorpusConfig(name=_config_name(corpus, files),
                                                 corpus_dir=corpus),
                         data_dir=str(data_dir), file_format="array_record")
    if not pathlib.Path(builder.data_dir).joinpath("dataset_info.json").exists():
      print(f"[data] building the byte corpus of {corpus} into {builder.data_dir} "
            "(once; later runs reuse it)", file=sys.stderr, flush=True)
      builder.download_and_prepare()
  except OSError as e:
    raise ConfigError("config.data.data_dir", f"cannot write the dataset under {data_dir} "
                      f"({e.strerror or e}); give a writable directory") from e
  return builder


def _catalog_builder(name: str, data_dir: str):
  """A prepared catalog dataset's builder, checked in the order a user meets
  the problems, each with its own message: the name is in the catalog; it is
  prepared in `data_dir`; as array_record (the default `tfds build` writes
  tfrecord, which has no random access)."""
  base = name.split("/")[0].split(":")[0]
  try:
    tfds.builder_cls(base)
  except Exception as e:
    raise ConfigError("config.data.name", f"unknown dataset {name!r}; allowed: 'bytes', "
                      "'synthetic', or a TFDS catalog name (e.g. 'lm1b')") from e
  build = (f"`tfds build {base} --file_format=array_record --data_dir {data_dir}` "
           "(TensorFlow is needed where it is built)")
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:
    raise ConfigError("config.data.name", f"{name!r}: {_first_line(e)}") from e
  if not builder.is_prepared():
    raise ConfigError("config.data.name", f"{name!r} is not prepared in {data_dir}; prepare it "
                      f"once with {build}, or set config.data.data_dir to where it is")
  fmt = builder.info.file_format
  if fmt != tfds.core.FileFormat.ARRAY_RECORD:
    raise ConfigError("config.data.name", f"{name!r} in {builder.data_dir} is prepared as "
                      f"{getattr(fmt, 'value', fmt)}, which has no random access; allowed: "
                      f"array_record: prepare it again with {build}")
  return builder


def _split_source(builder, name: str, split: str, split_field: str):
  """`builder`'s (dataset `name`) split by random access; TFDS slices and
  sums such as 'train[:90%]+test' are allowed."""
  splits = list(builder.info.splits)
  if any(part.split("[")[0].strip() not in splits for part in split.split("+")):
    raise ConfigError(split_field, f"{split!r} is not a split of {name!r}; allowed: "
                      f"{', '.join(splits)} (or TFDS slices and sums of them, e.g. "
                      f"'{splits[0]}[:90%]', '{'+'.join(splits[:2])}')")
  try:
    return builder.as_data_source(split=split)
  except Exception as e:
    raise ConfigError(split_field, f"{split!r} of {name!r}: {_first_line(e)}") from e


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def check_source(cfg) -> None:
  """What `Batches(cfg)` refuses about its data, checked without building or
  reading it and writing nothing (`sweep --dry-run`): the dataset name, the
  corpus directory, that an unprepared corpus's data dir can be made (as
  far as permissions tell), a catalog dataset's preparation and splits."""
  d = cfg.data
  data_dir = pathlib.Path(d.data_dir) if d.data_dir else default_data_dir()
  if d.name == "bytes":
    corpus = pathlib.Path(d.corpus_dir) if d.corpus_dir else default_corpus_dir()
    files = corpus_files(corpus) if corpus.is_dir() else []
    split_bytes = [sum(f.size + 1 for f in files if _is_validation(f.rel) == v)
                   for v in (False, True)]
    if not corpus.is_dir() or not files or min(split_bytes) < RECORD_LEN:
      build_byte_corpus(corpus, data_dir)   # says which, by name, before it would build
    built = ByteCorpus(config=ByteCorpusConfig(name=_config_name(corpus, files),
                                               corpus_dir=corpus), data_dir=str(data_dir),
                       file_format="array_record").data_dir
    parent = next(p for p in [data_dir, *data_dir.parents] if p.exists())
    if not (pathlib.Path(built) / "dataset_info.json").exists() and not (
        parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
      raise ConfigError("config.data.data_dir", f"cannot write the dataset under {data_dir} "
                        f"({parent} is not a writable directory); give a writable directory")
  elif d.name != "synthetic":
    builder = _catalog_builder(d.name, str(data_dir))
    splits = list(builder.info.splits)
    for split, field in ((d.train_split, "config.data.train_split"),
                         (d.eval_split, "config.data.eval_split")):
      if any(part.split("[")[0].strip() not in splits for part in split.split("+")):
        _split_source(builder, d.name, split, field)   # refuses it, by name


class Batches:
  """`train(step)` and `eval(index)`: [batch, seq_len + 1] int32, pure functions;
  `train_steps(first, n)`: the train batches of steps first .. first + n - 1,
  stacked [n, batch, seq_len + 1] (one call of the loop's program)."""

  def __init__(self, cfg):
    d = cfg.data
    self.seed, self.batch_size, self.row_len = data_seed(cfg), d.batch_size, d.seq_len + 1
    self.vocab_size = cfg.model.vocab_size
    self.name, self.text_key = d.name, d.text_key
    self._entropy = None
    if d.name == "synthetic":
      self.sources = None
      # the prefix is uniform over 1 .. vocab - 1, then repeated: half the tokens
      self._entropy = math.log(self.vocab_size - 1)
    elif d.name == "bytes":
      builder = build_byte_corpus(d.corpus_dir, d.data_dir)
      self.sources = {TRAIN_STREAM: builder.as_data_source(split="train"),
                      EVAL_STREAM: builder.as_data_source(split="validation")}
      self._entropy = builder.info.metadata.get("unigram_entropy")
    else:
      data_dir = d.data_dir or str(default_data_dir())
      builder = _catalog_builder(d.name, data_dir)
      self.sources = {
          TRAIN_STREAM: _split_source(builder, d.name, d.train_split, "config.data.train_split"),
          EVAL_STREAM: _split_source(builder, d.name, d.eval_split, "config.data.eval_split")}

  def train(self, step: int, seed: int | None = None) -> np.ndarray:
    """The train batch of update `step` (of the stream `seed`, default this
    config's)."""
    return self._batch(self.seed if seed is None else seed, TRAIN_STREAM, step)

  def train_steps(self, first: int, n: int, seed: int | None = None) -> np.ndarray:
    """[n, B, L1]: the train batches of updates first .. first + n - 1."""
    return np.stack([self.train(first + i, seed) for i in range(n)])

  def eval(self, index: int) -> np.ndarray:
    return self._batch(EVAL_SEED, EVAL_STREAM, index)

  @property
  def unigram_entropy(self) -> float:
    """Nats per token of the training text's token frequencies."""
    if self._entropy is None:   # a catalog dataset: estimated once per process
      counts = np.zeros(self.vocab_size, np.int64)
      source = self.sources[TRAIN_STREAM]
      for i in range(min(len(source), CATALOG_ENTROPY_RECORDS)):
        text = source[i][self.text_key]
        tokens = np.frombuffer(text if isinstance(text, bytes) else str(text).encode(), np.uint8)
        counts += np.bincount(np.minimum(tokens, self.vocab_size - 1),
                              minlength=self.vocab_size)
      self._entropy = entropy_of_counts(counts)
    return self._entropy

  def _batch(self, seed: int, stream: int, index: int) -> np.ndarray:
    rng = np.random.default_rng((seed, stream, index))
    if self.name == "synthetic":
      return self._copy_task(rng)
    source = self.sources[stream]
    if self.name == "bytes":
      return self._windows(rng, source)
    return self._packed(rng, source)

  def _copy_task(self, rng):
    half = (self.row_len + 1) // 2
    prefix = rng.integers(1, self.vocab_size, size=(self.batch_size, half))
    return np.concatenate([prefix, prefix], axis=1)[:, :self.row_len].astype(np.int32)

  def _windows(self, rng, source):
    records = rng.integers(0, len(source), size=self.batch_size)
    offsets = rng.integers(0, RECORD_LEN - self.row_len + 1, size=self.batch_size)
    rows = source.__getitems__(records.tolist())
    return np.stack([r["bytes"][o:o + self.row_len] for r, o in zip(rows, offsets)]
                    ).astype(np.int32)

  def _packed(self, rng, source):
    out = np.zeros((self.batch_size, self.row_len), np.int32)
    starts = rng.integers(0, len(source), size=self.batch_size)
    for b, start in enumerate(starts.tolist()):
      row, i = bytearray(), start
      while len(row) < self.row_len:
        text = source[i % len(source)][self.text_key]
        row += (text if isinstance(text, bytes) else str(text).encode()) + b"\0"
        i += 1
      out[b] = np.frombuffer(bytes(row[:self.row_len]), np.uint8)
    return np.minimum(out, self.vocab_size - 1)
