"""Datasets through TFDS (no TensorFlow needed), as batches that are a pure
function of (data seed, step).

Sources, chosen by `config.data.name`, and tokenizers, by `data.tokenizer`
(text.py: 'bytes', 'bpe:N', or a user's tokenizer file):

* `'bytes'` (the offline default): a byte-level text corpus built by the TFDS
  builder `ByteCorpus` from a local directory of text files (by default the
  Python standard library's own `*.py` sources: real text on every machine).
  Files are split into train/validation by a hash of their relative path (1 in
  20 to validation), joined with NUL separators, and cut into records of
  `RECORD_LEN` bytes, prepared once as ArrayRecord into the data dir and read
  by random access with `tfds.data_source`. A row is a random window of
  `seq_len + 1` bytes from a random record. Its tokenizer is 'bytes' only.
* `'prose'`: English prose every Python has (text.prose_docs: the standard
  library's docstrings and comments, and pydoc's help topics); `'text'`: the
  documents of `data.corpus_dir` (text.dir_docs: .txt .md .rst .py, .jsonl
  and .parquet records of `data.text_key`). Split by a hash of each
  document's path as above, tokenized once by `TokenCorpus` into records of
  `RECORD_LEN` tokens, read as windows as above.
* `'synthetic'`: a copy task (a random prefix, then the prefix again), made on
  the fly; a model that learns in-context copying drives its loss well down.
* any other name: a TFDS catalog dataset (e.g. `'lm1b'`) that the user has
  prepared as ArrayRecord in the data dir (`_catalog_builder` and
  `_split_source` say what is missing otherwise: the preparation, the format,
  or the split). With the 'bytes' tokenizer, rows are packed: from a random
  record on, texts (UTF-8 bytes of `data.text_key`) joined by NUL until the
  row is full; with another, its splits are tokenized once by `TokenCorpus`.

Every batch is `[batch_size, seq_len + 1]` int32 (inputs are `[:, :-1]`,
targets `[:, 1:]`), drawn by `numpy.random.default_rng((seed, stream, step))`,
so resuming, re-running, or running one variant alone sees the same data.
The train stream's seed is `data.seed`, or the run's `seed` when that is
None (the default), so one seed draws a replicate's init AND data order; the
eval batches are the same for every seed (EVAL_SEED), so replicates are
compared on one validation set.

`unigram_entropy` (nats per token of the chosen tokenizer) is the loss of a
model that knows only token frequencies: a run whose loss stays near it
learned nothing beyond them (a stalled run). `tokens_per_byte` (of the
validation text) turns a loss per token into bits per byte, which compare
across tokenizers. The prepared corpora store both in their metadata.
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from warmup_research import text
from warmup_research.errors import ConfigError
from warmup_research.text import TEXT_SUFFIXES, CorpusFile, corpus_files

tfds.display_progress_bar(False)
absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS's per-build chatter

RECORD_LEN = 1025          # bytes (tokens) per record: windows of up to 1024 + 1
VALIDATION_EVERY = 20      # 1 file in 20 (by path hash) goes to validation
TRAIN_STREAM, EVAL_STREAM = 0, 1
EVAL_SEED = 0              # the validation batches do not depend on the run's seed
CATALOG_ENTROPY_RECORDS = 2000  # records a catalog dataset's unigram entropy is estimated on
TOKEN_SOURCES = ("prose", "text")   # the built-in sources TokenCorpus tokenizes
READ_BATCH = 4096          # records read, and documents tokenized, at a time


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
  return text.stdlib_dir()


def _is_validation(rel_path: str) -> bool:
  return int(hashlib.sha1(rel_path.encode()).hexdigest(), 16) % VALIDATION_EVERY == 0


class ByteCorpusConfig(tfds.core.BuilderConfig):

  def __init__(self, *, corpus_dir: pathlib.Path, **kw):
    super().__init__(**kw)
    self.corpus_dir = corpus_dir


class ByteCorpus(tfds.core.GeneratorBasedBuilder):
  """Byte-level text corpus from a local directory, records of RECORD_LEN bytes."""

  VERSION = tfds.core.Version("1.2.0")   # 1.1.0: stores the unigram entropy; 1.2.0: raw
                                         # bytes records (_RawRecords), the same data

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Byte-level text of {self.builder_config.corpus_dir}",
        features=tfds.features.FeaturesDict(
            {"bytes": tfds.features.Tensor(shape=(RECORD_LEN,), dtype=np.uint8,
                                           encoding=tfds.features.Encoding.BYTES)}),
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


class TokenCorpusConfig(tfds.core.BuilderConfig):

  def __init__(self, *, dtype, **kw):
    super().__init__(**kw)
    self.dtype = dtype
    self.prepare = None   # () -> (train tokens, validation tokens, metadata): set to build


class TokenCorpus(tfds.core.GeneratorBasedBuilder):
  """A corpus's token streams under one tokenizer, records of RECORD_LEN tokens."""

  VERSION = tfds.core.Version("1.1.0")   # 1.1.0: raw bytes records (_RawRecords)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description="Token streams of a text corpus under one tokenizer",
        features=tfds.features.FeaturesDict(
            {"tokens": tfds.features.Tensor(shape=(RECORD_LEN,),
                                            dtype=self.builder_config.dtype,
                                            encoding=tfds.features.Encoding.BYTES)}),
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager
    train, validation, metadata = self.builder_config.prepare()
    self.info.metadata.update(metadata)
    return {"train": self._generate_examples(train),
            "validation": self._generate_examples(validation)}

  def _generate_examples(self, stream: np.ndarray):
    for i in range(len(stream) // RECORD_LEN):
      yield i, {"tokens": stream[i * RECORD_LEN:(i + 1) * RECORD_LEN]}


class _TextSource:
  """A corpus before it is read: `key` (what its documents depend on, read
  cheaply), `field` (the config field its problems are told by) and
  `read()` -> (train texts, validation texts, corpus info)."""

  def __init__(self, key: str, field: str, read):
    self.key, self.field, self.read = key, field, read


def _split_docs(docs: list[text.Doc]):
  train = [d.text for d in docs if not _is_validation(d.rel)]
  validation = [d.text for d in docs if _is_validation(d.rel)]
  return train, validation, text.corpus_info(docs)


def _text_source(d, data_dir: str) -> _TextSource:
  """The source of `data.name` for TokenCorpus, checked as far as it can be
  without reading its text: the directory holds text files, a parquet file
  has the text column, a catalog dataset is prepared with its splits."""
  if d.name == "prose":
    return _TextSource(f"prose:{text.prose_key()}", "config.data.name",
                       lambda: _split_docs(text.prose_docs()))
  if d.name == "text":
    corpus = pathlib.Path(d.corpus_dir) if d.corpus_dir else default_corpus_dir()
    if not corpus.is_dir():
      raise ConfigError("config.data.corpus_dir", f"not a directory: {corpus}")
    files = text.dir_files(corpus)
    if not files:
      raise ConfigError("config.data.corpus_dir", "no text files ("
                        f"{', '.join(text.TEXT_SUFFIXES + text.RECORD_SUFFIXES)}) under {corpus}")
    for f in files:
      if f.rel.endswith(".parquet"):
        text.check_parquet(f.path, d.text_key)
    key = f"text:{_config_name(corpus, files)}:{d.text_key}"
    return _TextSource(key, "config.data.corpus_dir",
                       lambda: _split_docs(text.dir_docs(corpus, d.text_key)))
  builder = _catalog_builder(d.name, data_dir)
  sources = {field: _split_source(builder, d.name, split, f"config.data.{field}")
             for field, split in (("train_split", d.train_split), ("eval_split", d.eval_split))}

  def read():
    texts = {}
    for field, source in sources.items():   # in batches: a record at a time is slow
      records = (r for i in range(0, len(source), READ_BATCH)
                 for r in source.__getitems__(list(range(i, min(i + READ_BATCH, len(source))))))
      texts[field] = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
                      for t in (r[d.text_key] for r in records)]
    docs = [text.Doc(f"{d.name}/{f}#{i}", t) for f, ts in texts.items() for i, t in enumerate(ts)]
    return texts["train_split"], texts["eval_split"], text.corpus_info(docs)
  key = f"catalog:{d.name}:{builder.data_dir}:{d.train_split}:{d.eval_split}:{d.text_key}"
  return _TextSource(key, "config.data.name", read)


def resolve_tokenizer(spec: str, vocab_size: int):
  """(the user's tokenizer or None, its vocabulary size or bound), refused
  by name when it does not load or is larger than `model.vocab_size`."""
  n = text.bpe_vocab(spec)
  tok = None
  if spec == "bytes":
    n = 256
  elif n is None:
    tok = text.load_tokenizer(spec)
    n = tok.vocab_size
  if n > vocab_size:
    raise ConfigError("config.model.vocab_size", f"must be >= the tokenizer's vocabulary ({n} "
                      f"tokens, data.tokenizer={spec!r}), got {vocab_size}; set "
                      f"model.vocab_size={n}")
  return tok, n


def _token_builder(d, vocab_size: int, data_dir: pathlib.Path):
  """(TokenCorpus builder of the config's source and tokenizer, unprepared
  or not, the source, the user's tokenizer): nothing is read or written."""
  source = _text_source(d, str(data_dir))
  tok, n = resolve_tokenizer(d.tokenizer, vocab_size)
  tok_key = tok.sha256 if tok else d.tokenizer
  name = "tok_" + hashlib.sha1(f"{source.key}|{tok_key}".encode()).hexdigest()[:12]
  dtype = np.uint16 if n <= 2**16 else np.int32
  builder = TokenCorpus(config=TokenCorpusConfig(name=name, dtype=dtype), data_dir=str(data_dir),
                        file_format="array_record")
  return builder, source, tok


def _stream(tok, texts: list[str], dtype) -> np.ndarray:
  """The texts' tokens, each document followed by `tok.eos` (if any), as one
  array; encoded in chunks, so only one chunk's Python lists are alive."""
  sep = [tok.eos] if tok.eos is not None else []
  chunks = []
  for i in range(0, len(texts), READ_BATCH):
    ids = [t for doc in tok.encode_batch(texts[i:i + READ_BATCH]) for t in (*doc, *sep)]
    chunks.append(np.asarray(ids, dtype))
  return np.concatenate(chunks) if chunks else np.zeros(0, dtype)


def _tokenize(d, source: _TextSource, tok, data_dir: pathlib.Path, dtype):
  """Reads the source and tokenizes it (training the BPE first, cached in
  the data dir by the train text's hash and N): (train, validation, metadata)."""
  train_texts, val_texts, info = source.read()
  if not train_texts or not val_texts:
    raise ConfigError(source.field, f"{d.name!r} has no text for a "
                      f"{'train' if not train_texts else 'validation'} split")
  if tok is None and d.tokenizer == "bytes":
    tok = text.bytes_tokenizer()
  elif tok is None:
    h = hashlib.sha256()
    for t in train_texts:
      h.update(t.encode("utf-8", errors="replace") + b"\0")
    n = text.bpe_vocab(d.tokenizer)
    print(f"[data] training a byte-level BPE of {n} tokens on {len(train_texts)} documents "
          "(once; cached)", file=sys.stderr, flush=True)
    tok = text.train_bpe(train_texts, n, data_dir / "tokenizers" /
                         f"bpe_{h.hexdigest()[:16]}_{n}.json", save=False)
  train, validation = _stream(tok, train_texts, dtype), _stream(tok, val_texts, dtype)
  for split, stream in (("train", train), ("validation", validation)):
    if len(stream) < RECORD_LEN:
      raise ConfigError(source.field, f"{d.name!r} has too little text for a {split} split "
                        f"({len(stream)} tokens; needs at least {RECORD_LEN}; documents go "
                        f"to validation by a hash of their path, 1 in {VALIDATION_EVERY})")
  if tok.file is not None:   # a BPE trained here, now that its corpus passed
    text.save_bpe(tok)
  kept = train[:len(train) // RECORD_LEN * RECORD_LEN].astype(np.int64)
  val_bytes = sum(len(t.encode("utf-8", errors="replace")) + 1 for t in val_texts)
  metadata = dict(
      unigram_entropy=entropy_of_counts(np.bincount(kept, minlength=tok.vocab_size)),
      tokens_per_byte=len(validation) / val_bytes, validation_tokens=len(validation),
      validation_bytes=val_bytes, train_tokens=len(train), corpus=info,
      tokenizer=dict(spec=d.tokenizer, vocab_size=tok.vocab_size, eos=tok.eos,
                     sha256=tok.sha256))
  return train, validation, metadata


def build_token_corpus(cfg) -> tfds.core.DatasetBuilder:
  """Prepares (once) and returns the TokenCorpus builder of `cfg.data`: its
  text is read, checked and tokenized before anything is written."""
  d = cfg.data
  data_dir = pathlib.Path(d.data_dir) if d.data_dir else default_data_dir()
  builder, source, tok = _token_builder(d, cfg.model.vocab_size, data_dir)
  if pathlib.Path(builder.data_dir).joinpath("dataset_info.json").exists():
    return builder
  print(f"[data] tokenizing {d.name!r} with {d.tokenizer!r} into {builder.data_dir} "
        "(once; later runs reuse it)", file=sys.stderr, flush=True)
  parts = _tokenize(d, source, tok, data_dir, builder.builder_config.dtype)
  builder.builder_config.prepare = lambda: parts
  try:
    builder.download_and_prepare()
  except OSError as e:
    raise ConfigError("config.data.data_dir", f"cannot write the dataset under {data_dir} "
                      f"({e.strerror or e}); give a writable directory") from e
  return builder


def uses_token_corpus(d) -> bool:
  """Whether `data` is tokenized by TokenCorpus (not the byte corpus, the
  copy task or a catalog dataset packed as bytes)."""
  return d.name in TOKEN_SOURCES or (d.name not in ("bytes", "synthetic")
                                     and d.tokenizer != "bytes")


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
  elif uses_token_corpus(d):
    builder, _, _ = _token_builder(d, cfg.model.vocab_size, data_dir)
    parent = next(p for p in [data_dir, *data_dir.parents] if p.exists())
    if not (pathlib.Path(builder.data_dir) / "dataset_info.json").exists() and not (
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


class _RawRecords:
  """A prepared corpus's records read without TFDS's per-record decoding
  (about 55 us a record, most of a window's cost at seq 128;
  benchmarks/NOTES.md, "data pipeline"). The corpora store their tensor as
  raw bytes (`Encoding.BYTES`): a record is a serialized tf.Example whose
  fixed-size header is followed by the tensor's bytes, so every record has
  one length. `of` checks that layout on the split's first and last
  records against TFDS's own decoding (None where it does not hold); a
  record of another length (a corpus prepared with int64 varints, whose
  length varies) is decoded by TFDS, so every read equals TFDS's."""

  def __init__(self, source, feature: str, record_len: int):
    self.source, self.feature, self.record_len = source, feature, record_len
    self.dtype = np.dtype(source.dataset_info.features[feature].np_dtype)
    self.offset = record_len - RECORD_LEN * self.dtype.itemsize

  @classmethod
  def of(cls, source, feature: str):
    try:
      ends = [0, len(source) - 1]
      raw = cls(source, feature, len(source.data_source[0]))
      ok = raw.offset >= 0 and all(np.array_equal(r, source[i][feature])
                                   for i, r in zip(ends, raw.read(ends)))
    except Exception:   # a TFDS without these internals: the decoded path is right
      return None
    return raw if ok else None

  def read(self, indices: list[int]) -> list[np.ndarray]:
    return [np.frombuffer(r, self.dtype, RECORD_LEN, self.offset) if len(r) == self.record_len
            else self.source[i][self.feature]
            for i, r in zip(indices, self.source.data_source.__getitems__(indices))]


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
    self.tokens_per_byte = 1.0   # byte-level text, unless its metadata says otherwise
    self.metadata = {}
    if d.name == "synthetic":
      self.kind, self.sources, self.tokens_per_byte = "synthetic", None, None
      # the prefix is uniform over 1 .. vocab - 1, then repeated: half the tokens
      self._entropy = math.log(self.vocab_size - 1)
    elif d.name == "bytes" or uses_token_corpus(d):
      if d.name == "bytes":
        self.kind, builder = "bytes", build_byte_corpus(d.corpus_dir, d.data_dir)
      else:
        self.kind, builder = "tokens", build_token_corpus(cfg)
      self.sources = {TRAIN_STREAM: builder.as_data_source(split="train"),
                      EVAL_STREAM: builder.as_data_source(split="validation")}
      self._raw = {s: _RawRecords.of(src, self.kind) for s, src in self.sources.items()}
      self.metadata = dict(builder.info.metadata)
      self._entropy = self.metadata.get("unigram_entropy")
      self.tokens_per_byte = self.metadata.get("tokens_per_byte", 1.0)
    else:
      self.kind = "packed"
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
    if self.kind == "synthetic":
      return self._copy_task(rng)
    source = self.sources[stream]
    if self.kind == "packed":
      return self._packed(rng, source)
    return self._windows(rng, source, self.kind, self._raw[stream])

  def _copy_task(self, rng):
    half = (self.row_len + 1) // 2
    prefix = rng.integers(1, self.vocab_size, size=(self.batch_size, half))
    return np.concatenate([prefix, prefix], axis=1)[:, :self.row_len].astype(np.int32)

  def _windows(self, rng, source, feature: str, raw=None):
    records = rng.integers(0, len(source), size=self.batch_size)
    offsets = rng.integers(0, RECORD_LEN - self.row_len + 1, size=self.batch_size)
    if raw is not None:
      rows = raw.read(records.tolist())
    else:
      rows = [r[feature] for r in source.__getitems__(records.tolist())]
    return np.stack([r[o:o + self.row_len] for r, o in zip(rows, offsets)]).astype(np.int32)

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
