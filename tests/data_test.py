"""Data: the real TFDS builder on real text; batches are pure functions of
(seed, step); catalog datasets through tfds.data_source; clear errors."""
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import tiny_config

from warmup_research import data
from warmup_research.errors import ConfigError


@pytest.fixture
def bytes_cfg(corpus_dir, tmp_path_factory):
  return lambda **kw: tiny_config(**{"data.name": "bytes", "data.corpus_dir": str(corpus_dir),
                                     **kw})


def test_byte_corpus_builds_with_tfds_and_splits_by_file(bytes_cfg, corpus_dir):
  b = data.Batches(bytes_cfg())
  train, val = b.sources[data.TRAIN_STREAM], b.sources[data.EVAL_STREAM]
  assert len(train) > 10 * len(val) > 0
  rec = train[0]["bytes"]
  assert rec.shape == (data.RECORD_LEN,) and rec.dtype == np.uint8
  files = data.corpus_files(corpus_dir)
  is_val = [data._is_validation(f.rel) for f in files]
  assert 0 < sum(is_val) < len(files)
  # The train split's records are the consecutive windows of its files'
  # text, in path order, each file ended by a NUL (TFDS stores them shuffled).
  stream = b"".join(pathlib.Path(f.path).read_bytes().replace(b"\0", b" ") + b"\0"
                    for f, v in zip(files, is_val) if not v)
  r = data.RECORD_LEN
  windows = sorted(stream[i * r:(i + 1) * r] for i in range(len(stream) // r))
  assert sorted(bytes(train[i]["bytes"]) for i in range(len(train))) == windows


def test_corpus_files_skips_packages_hidden_and_non_text(tmp_path):
  for rel in ["b.py", "a/z.txt", "a/y.md", "a/x.rst", "a/w.bin", "site-packages/p.py",
              "a/__pycache__/c.py", ".git/h.py", "a/.hidden.py", "dist-packages/q/r.txt"]:
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text("x")
  (tmp_path / "dir.py").mkdir()  # a directory with a text suffix is not a file
  (tmp_path / "b.py").write_text("xyz")
  got = [(f.rel, f.size) for f in data.corpus_files(tmp_path)]
  assert got == [("a/x.rst", 1), ("a/y.md", 1), ("a/z.txt", 1), ("b.py", 3)]


def test_an_edited_corpus_is_rebuilt(tiny_cfg, tmp_path):
  corpus = tmp_path / "c"
  corpus.mkdir()
  for i in range(40):
    (corpus / f"f{i}.txt").write_text(f"file {i} " * 300)
  cfg = tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(corpus)})
  first = data.Batches(cfg)
  n = len(first.sources[data.TRAIN_STREAM])
  (corpus / "more.txt").write_text("new text " * 5000)
  second = data.Batches(cfg)
  assert len(second.sources[data.TRAIN_STREAM]) > n


def test_batches_are_a_pure_function_of_seed_and_step(bytes_cfg):
  cfg = bytes_cfg()
  a, b = data.Batches(cfg), data.Batches(cfg)  # two readers, no shared state
  assert a.train(3).shape == (4, 33) and a.train(3).dtype == np.int32
  np.testing.assert_array_equal(a.train(3), b.train(3))
  np.testing.assert_array_equal(a.train(7), a.train(7))   # any order, re-readable
  assert not np.array_equal(a.train(3), a.train(4))
  assert not np.array_equal(a.train(3), a.eval(3))
  other = data.Batches(bytes_cfg(**{"data.seed": 1}))
  assert not np.array_equal(a.train(3), other.train(3))


def test_the_run_seed_draws_the_data_order_and_eval_is_one_set(bytes_cfg):
  zero, one = data.Batches(bytes_cfg(seed=0)), data.Batches(bytes_cfg(seed=1))
  assert not np.array_equal(zero.train(3), one.train(3))
  np.testing.assert_array_equal(one.train(3), zero.train(3, seed=1))
  np.testing.assert_array_equal(zero.eval(2), one.eval(2))   # one validation set for all
  apart = data.Batches(bytes_cfg(**{"seed": 1, "data.seed": 0}))   # a config may separate them
  np.testing.assert_array_equal(apart.train(3), zero.train(3))


def test_unigram_entropy_is_stored_with_the_prepared_corpus(bytes_cfg, corpus_dir):
  files = data.corpus_files(corpus_dir)
  stream = b"".join(pathlib.Path(f.path).read_bytes().replace(b"\0", b" ") + b"\0"
                    for f in files if not data._is_validation(f.rel))
  kept = np.frombuffer(stream[:len(stream) // data.RECORD_LEN * data.RECORD_LEN], np.uint8)
  p = np.bincount(kept, minlength=256) / kept.size
  p = p[p > 0]
  want = -np.sum(p * np.log(p))
  assert data.Batches(bytes_cfg()).unigram_entropy == pytest.approx(want, rel=1e-12)
  assert 2.0 < want < 5.0
  builder = data.build_byte_corpus(corpus_dir, None)   # read back from the prepared files
  assert builder.info.metadata["unigram_entropy"] == pytest.approx(want, rel=1e-12)


def test_synthetic_copy_task(tiny_cfg):
  b = data.Batches(tiny_cfg(**{"data.seq_len": 9}))
  x = b.train(0)
  assert x.shape == (4, 10) and x.min() >= 1 and x.max() < 256
  np.testing.assert_array_equal(x[:, :5], x[:, 5:])


class WrTestSentences(tfds.core.GeneratorBasedBuilder):
  """A catalog dataset as a user has one (registered by its class name, as
  `lm1b` is): text records in splits 'train' and 'test', no 'validation'."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

  SPLITS = {"train": (0, 40), "test": (40, 50)}   # record numbers first .. end - 1

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(*span) for split, span in self.SPLITS.items()}

  def _generate_examples(self, first, end):
    for i in range(first, end):
      yield i, {"text": self.text(i)}

  @staticmethod
  def text(i):
    return f"sentence number {i}"


def _prepare_catalog_dataset(data_dir):
  b = tfds.builder("wr_test_sentences", data_dir=str(data_dir), file_format="array_record")
  b.download_and_prepare()
  return pathlib.Path(b.data_dir)


def test_catalog_dataset_prepared_as_array_record(tiny_cfg, tmp_path):
  _prepare_catalog_dataset(tmp_path)
  cfg = tiny_cfg(**{"data.name": "wr_test_sentences", "data.data_dir": str(tmp_path),
                    "data.eval_split": "test"})
  b = data.Batches(cfg)
  x = b.train(0)
  assert x.shape == (4, 33)
  row = bytes(x[0].astype(np.uint8))
  assert b"sentence number" in row and b"\0" in row   # packed, NUL-separated
  np.testing.assert_array_equal(data.Batches(cfg).train(3), b.train(3))   # pure in (seed, step)
  sliced = data.Batches(tiny_cfg(**{"data.name": "wr_test_sentences",
                                    "data.data_dir": str(tmp_path), "data.eval_split": "test",
                                    "data.train_split": "train[:50%]+test"}))
  assert len(sliced.sources[data.TRAIN_STREAM]) == 20 + 10   # TFDS slices and sums pass
  test_texts = bytes(b.eval(0).astype(np.uint8).ravel())
  assert b"sentence number 4" in test_texts   # the test split holds sentences 40-49


def test_catalog_dataset_errors_name_the_field_and_the_fix(tiny_cfg, tmp_path):
  cfg = lambda **kw: tiny_cfg(**{"data.name": "wr_test_sentences",
                                 "data.data_dir": str(tmp_path), **kw})
  with pytest.raises(ConfigError, match=r"config.data.name: 'wr_test_sentences' is not prepared "
                     r"in .*`tfds build wr_test_sentences --file_format=array_record"):
    data.Batches(cfg(**{"data.eval_split": "test"}))
  version_dir = _prepare_catalog_dataset(tmp_path)
  with pytest.raises(ConfigError, match=r"config.data.eval_split: 'validation' is not a split of "
                     r"'wr_test_sentences'; allowed: (train, test|test, train)"):
    data.Batches(cfg())
  with pytest.raises(ConfigError, match=r"config.data.train_split: 'dev' is not a split"):
    data.Batches(cfg(**{"data.train_split": "dev", "data.eval_split": "test"}))
  # As `tfds build` writes it by default: tfrecord, which has no random access.
  info = version_dir / "dataset_info.json"
  info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
  with pytest.raises(ConfigError, match=r"config.data.name: .* is prepared as tfrecord, which has "
                     r"no random access; allowed: array_record: prepare it again with `tfds build"):
    data.Batches(cfg(**{"data.eval_split": "test"}))


def test_bad_data_inputs_name_the_field(tiny_cfg, tmp_path):
  with pytest.raises(ConfigError, match="config.data.name: unknown dataset 'no_such_set'"):
    data.Batches(tiny_cfg(**{"data.name": "no_such_set"}))
  with pytest.raises(ConfigError, match="config.data.corpus_dir: not a directory"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "nope")}))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="config.data.corpus_dir: no text files"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "empty")}))
  (tmp_path / "tiny").mkdir()
  (tmp_path / "tiny" / "a.txt").write_text("too short")
  with pytest.raises(ConfigError, match="config.data.corpus_dir: .* too little text"):
    data.Batches(tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(tmp_path / "tiny")}))


def _golden_corpus(root):
  """60 files of generated text: the same bytes on every machine."""
  for i in range(60):
    (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
    (root / f"d{i % 3}" / f"f{i}.txt").write_text("".join(
        f"line {j} of file {i}: {'abc' * (j % 5)}\n" for j in range(40)))
  return root


def test_the_byte_corpus_batches_are_those_of_before_tokenizers(tiny_cfg, tmp_path):
  # Recorded from the code before data.tokenizer existed (ae8b2c0): 'bytes'
  # must keep drawing these batches bit for bit, or committed results change.
  import hashlib  # only here
  b = data.Batches(tiny_cfg(**{"data.name": "bytes",
                               "data.corpus_dir": str(_golden_corpus(tmp_path / "c"))}))
  got = {name: hashlib.sha256(x.tobytes()).hexdigest()[:16]
         for name, x in (("train0", b.train(0)), ("train1", b.train(1)), ("eval0", b.eval(0)))}
  assert got == {"train0": "9fa4b9b3f25c5516", "train1": "a7b93c6e670257b6",
                 "eval0": "d9b876c78c485733"}
  assert b.unigram_entropy == pytest.approx(2.740264252635311, rel=1e-12)
  assert b.tokens_per_byte == 1.0


# The default corpus as the code before tokenizers drew it, recorded on the
# Python 3.11 standard library of the development machine; on another the
# corpus differs, and the generated corpus above is the check.
STDLIB_NAME = "dir_e90d39bd77f3"


def test_the_default_corpus_batches_are_those_of_before_tokenizers(tiny_cfg):
  import hashlib  # only here
  corpus = data.default_corpus_dir()
  if data._config_name(corpus, data.corpus_files(corpus)) != STDLIB_NAME:
    pytest.skip("another standard library than the one the batches were recorded on")
  b = data.Batches(tiny_cfg(**{"data.name": "bytes"}))
  got = [hashlib.sha256(x.tobytes()).hexdigest()[:16] for x in (b.train(0), b.train(1),
                                                                b.eval(0))]
  assert got == ["3788ff24c7000f81", "46ecf7db92599c02", "ac07d16aed8cbb7d"]
  assert b.unigram_entropy == pytest.approx(3.271656269852282, rel=1e-12)
  assert (len(b.sources[data.TRAIN_STREAM]), len(b.sources[data.EVAL_STREAM])) == (29402, 1791)


def test_text_dir_with_bytes_is_one_token_per_byte(tiny_cfg, tmp_path):
  corpus = _golden_corpus(tmp_path / "c")
  b = data.Batches(tiny_cfg(**{"data.name": "text", "data.corpus_dir": str(corpus)}))
  assert b.kind == "tokens" and b.tokens_per_byte == 1.0
  x = b.train(0)
  assert x.shape == (4, 33) and b"line" in bytes(x.astype(np.uint8).ravel())
  info = b.metadata["corpus"]
  assert info["files"] == 60 and len(info["sha256"]) == 64
  assert info["bytes"] == sum(f.stat().st_size for f in corpus.rglob("*.txt"))


def _bpe_cfg(tiny_cfg, **kw):
  return tiny_cfg(**{"data.tokenizer": "bpe:300", "model.vocab_size": 300, **kw})


def test_text_dir_with_bpe_is_tokenized_once_and_pure_in_seed_and_step(tiny_cfg, tmp_path,
                                                                       monkeypatch):
  import pyarrow as pa  # only here
  import pyarrow.parquet as pq  # as above
  corpus = tmp_path / "c"
  _golden_corpus(corpus)
  (corpus / "more.jsonl").write_text("".join(
      f'{{"body": "record {i} says hello"}}\n' for i in range(100)))
  pq.write_table(pa.table({"body": [f"row {i} of the table" for i in range(100)]}),
                 corpus / "t.parquet")
  cfg = _bpe_cfg(tiny_cfg, **{"data.name": "text", "data.corpus_dir": str(corpus),
                              "data.text_key": "body"})
  a = data.Batches(cfg)
  x = a.train(0)
  assert x.shape == (4, 33) and x.dtype == np.int32 and 0 <= x.min() and x.max() < 300
  assert 0.1 < a.tokens_per_byte < 0.9   # a BPE packs several bytes per token
  assert 0 < a.unigram_entropy < np.log(300)
  assert a.metadata["tokenizer"]["vocab_size"] == 300
  # The second reader reads the prepared records; it neither re-reads nor re-trains.
  monkeypatch.setattr(data.text, "dir_docs", lambda *a: pytest.fail("re-read the corpus"))
  monkeypatch.setattr(data.text, "train_bpe", lambda *a: pytest.fail("re-trained the BPE"))
  b = data.Batches(cfg)
  np.testing.assert_array_equal(a.train(3), b.train(3))
  assert not np.array_equal(a.train(3), a.eval(3))
  assert not np.array_equal(a.train(3), data.Batches(
      _bpe_cfg(tiny_cfg, **{"data.name": "text", "data.corpus_dir": str(corpus), "seed": 1,
                            "data.text_key": "body"})).train(3))


def test_prose_corpus_with_bpe(tiny_cfg, tmp_path, monkeypatch):
  # A small "standard library" (the real one takes about a minute to read).
  lib = tmp_path / "lib"
  for i in range(30):
    (lib / f"m{i}.py").parent.mkdir(parents=True, exist_ok=True)
    (lib / f"m{i}.py").write_text(f'"""Module {i} explains things."""\n# why {i}\nx = {i}\n')
  monkeypatch.setattr(data.text, "stdlib_dir", lambda: lib)
  b = data.Batches(_bpe_cfg(tiny_cfg, **{"data.name": "prose"}))
  info = b.metadata["corpus"]
  assert info["files"] == 31 and info["documents"] > 30   # 30 modules and pydoc's topics
  assert b.tokens_per_byte < 0.9 and b.train(0).max() < 300


class WrTestParagraphs(WrTestSentences):
  """A catalog dataset of longer texts: enough for a BPE's token records."""

  SPLITS = {"train": (0, 300), "test": (300, 400)}

  @staticmethod
  def text(i):
    return f"Paragraph {i}: the cat sat on the mat, and then the dog {i % 7} came."


def test_catalog_dataset_with_a_bpe_tokenizer(tiny_cfg, tmp_path):
  tfds.builder("wr_test_paragraphs", data_dir=str(tmp_path),
               file_format="array_record").download_and_prepare()
  cfg = _bpe_cfg(tiny_cfg, **{"data.name": "wr_test_paragraphs", "data.data_dir": str(tmp_path),
                              "data.eval_split": "test"})
  b = data.Batches(cfg)
  assert b.kind == "tokens" and b.train(0).max() < 300 and b.tokens_per_byte < 0.9
  assert b.metadata["corpus"]["documents"] == 400
  np.testing.assert_array_equal(data.Batches(cfg).eval(1), b.eval(1))
  data.check_source(cfg)   # a prepared one passes the dry run


def test_bad_tokenizers_and_corpora_name_the_field_and_write_nothing(tiny_cfg, tmp_path):
  import pyarrow as pa  # only here
  import pyarrow.parquet as pq  # as above
  corpus = _golden_corpus(tmp_path / "c")
  out = tmp_path / "data"
  cfg = lambda **kw: tiny_cfg(**{"data.name": "text", "data.corpus_dir": str(corpus),
                                 "data.data_dir": str(out), **kw})
  with pytest.raises(ConfigError, match=r"config.data.tokenizer: no such file: .*nope.json"):
    data.Batches(cfg(**{"data.tokenizer": str(tmp_path / "nope.json")}))
  (tmp_path / "bad.json").write_text("[]")
  with pytest.raises(ConfigError, match=r"config.data.tokenizer: .*bad.json does not parse"):
    data.check_source(cfg(**{"data.tokenizer": str(tmp_path / "bad.json")}))
  data.text.train_bpe(["a b c d e f g h"] * 20, 280, tmp_path / "tokenizer.json")
  with pytest.raises(ConfigError, match=r"config.model.vocab_size: must be >= the tokenizer's "
                     r"vocabulary \(\d+ tokens, .*\), got 256; set model.vocab_size="):
    data.Batches(cfg(**{"data.tokenizer": str(tmp_path / "tokenizer.json")}))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match=r"config.data.corpus_dir: no text files \(.*\.jsonl"):
    data.Batches(cfg(**{"data.corpus_dir": str(tmp_path / "empty")}))
  pq.write_table(pa.table({"body": ["x"]}), corpus / "t.parquet")
  with pytest.raises(ConfigError, match=r"config.data.text_key: .*t.parquet has no column 'text'"):
    data.check_source(cfg())
  assert not out.exists()   # nothing was written


def test_raw_record_reads_equal_tfds_decoding_and_fall_back_where_they_cannot(tiny_cfg,
                                                                            tmp_path):
  # Non-ASCII text: a record stored as int64 varints (TFDS's default
  # encoding) is longer than its 1025 values, so only the raw layout reads
  # it by slicing; uint16 BPE tokens (above 127) take the same path.
  corpus = _golden_corpus(tmp_path / "c")
  (corpus / "d0" / "u.txt").write_text("".join(f"ünïcödé €{i} ☃\n" for i in range(400)))
  for cfg in (tiny_cfg(**{"data.name": "bytes", "data.corpus_dir": str(corpus)}),
              _bpe_cfg(tiny_cfg, **{"data.name": "text", "data.corpus_dir": str(corpus)})):
    b = data.Batches(cfg)
    assert all(r is not None for r in b._raw.values())
    want = {s: [r[b.kind] for r in src.__getitems__(list(range(len(src))))]
            for s, src in b.sources.items()}
    for s, raw in b._raw.items():
      got = raw.read(list(range(len(b.sources[s]))))
      assert all(np.array_equal(g, w) and g.dtype == w.dtype for g, w in zip(got, want[s]))
    assert any(w.max() > 127 for w in want[data.TRAIN_STREAM])
    decoded = data.Batches(cfg)
    decoded._raw = dict.fromkeys(decoded._raw)   # the TFDS path
    for step in range(3):
      np.testing.assert_array_equal(b.train(step), decoded.train(step))
      np.testing.assert_array_equal(b.eval(step), decoded.eval(step))

  class Varints(tfds.core.GeneratorBasedBuilder):   # an older corpus's encoding
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {"bytes": tfds.features.Tensor(shape=(data.RECORD_LEN,), dtype=np.uint8)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      rows = [np.full(data.RECORD_LEN, 97), np.arange(data.RECORD_LEN) % 256,
              np.full(data.RECORD_LEN, 98)]
      for i, r in enumerate(rows):
        yield i, {"bytes": r.astype(np.uint8)}
  builder = Varints(data_dir=str(tmp_path / "v"), file_format="array_record")
  builder.download_and_prepare()
  source = builder.as_data_source(split="train")
  raw = data._RawRecords.of(source, "bytes")
  assert raw is not None and len(source.data_source[1]) != raw.record_len
  got = raw.read([2, 1, 0])
  assert [list(g) for g in got] == [list(source[i]["bytes"]) for i in (2, 1, 0)]
