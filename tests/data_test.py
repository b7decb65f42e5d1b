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

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(0, 40), "test": self._generate_examples(40, 50)}

  def _generate_examples(self, first, end):
    for i in range(first, end):
      yield i, {"text": f"sentence number {i}"}


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
