"""Tests of ``pyloader_tf``: the tf.data adapter, signatures, TFCollator, Keras fit, tf.distribute, lifecycle."""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if os.environ.get("PYLOADER_REQUIRE_ALL") == "1":
    # CI (tox -e all) must run these: a module-level skip is a collection report, which conftest's
    # skip-to-failure hook does not see, so import plainly and let a missing package fail the run.
    import keras  # noqa: E402
    import psutil  # noqa: E402
    import tensorflow as tf  # noqa: E402
else:
    tf = pytest.importorskip("tensorflow", reason="pyloader_tf needs TensorFlow (pip install tensorflow-cpu)")
    keras = pytest.importorskip("keras", reason="the Keras fit tests need keras (comes with TensorFlow)")
    psutil = pytest.importorskip("psutil", reason="the lifecycle tests count processes with psutil")

from pyloader_core import DataReader, JsonLineDataReader, NumpyDataCollator, TextDataset  # noqa: E402
from pyloader_core.errors import ConfigError, DataFormatError, PyLoaderError  # noqa: E402
from pyloader_tf import (  # noqa: E402
    EpochSyncCallback,
    SignatureMismatchError,
    TFCollator,
    TFEpochSource,
    check_batch,
    infer_signature,
    make_distributed_dataset_fn,
    make_tf_dataset,
    wait_idle,
)

WORDS = ["good", "great", "fine", "bad", "awful", "poor", "the", "a", "movie", "plot"]
N_FILES, PER_FILE, BATCH = 5, 23, 8  # 115 samples: batches of 8 with a short last one
SEQ = 6


# ---------------------------------------------------------------------------- helpers


def write_chunks(root: Path, n_files: int = N_FILES, per_file: int = PER_FILE, seed: int = 0) -> tuple[str, str]:
    """JSON-lines chunks ``{"id", "input_text", "label"}`` (label learnable from the words) and a vocab."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir()
    sid = 0
    for c in range(n_files):
        lines = []
        for _ in range(per_file):
            label = int(rng.integers(0, 2))
            pool = WORDS[:3] if label else WORDS[3:6]
            words = list(rng.choice(pool, size=2)) + list(rng.choice(WORDS[6:], size=int(rng.integers(0, 4))))
            lines.append(json.dumps({"id": sid, "input_text": " ".join(words), "label": label}))
            sid += 1
        (data / f"chunk-{c:03d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["<pad>", "<unk>", *WORDS]) + "\n", encoding="utf-8")
    return str(data), str(vocab)


class IdTextDataset(TextDataset):
    """TextDataset that keeps each sample's ``id`` (to check coverage) and its raw text."""

    def batch_encode(self, batch_data: dict[str, Any]) -> dict[str, Any]:
        out = super().batch_encode(batch_data)
        out["id"] = np.asarray(batch_data["id"], dtype=np.int64)
        out["text"] = list(batch_data["input_text"])
        return out


def loader_threads() -> list[str]:
    """PyLoader worker threads still running."""
    return [t.name for t in threading.enumerate() if t.name.startswith("pyloader-")]


def python_threads() -> int:
    """Threads Python started (TensorFlow's own native threads that ran Python code are not counted)."""
    dummy = threading._DummyThread  # type: ignore[attr-defined]
    return sum(1 for t in threading.enumerate() if not isinstance(t, dummy))


def children() -> list[Any]:
    """Live child processes, except multiprocessing's resource tracker (started once, kept for the session)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:  # exited meanwhile
            continue
    return out


def wait_until(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Wait for TensorFlow to finalize every abandoned generator (the event itself), then check ``cond``."""
    gc.collect()  # drop iterators kept alive only by reference cycles
    return wait_idle(timeout) and cond()


def ids_of(ds: Any) -> list[int]:
    return [int(i) for batch in ds for i in batch["id"].numpy()]


@pytest.fixture()
def chunks(tmp_path: Path) -> tuple[str, str]:
    return write_chunks(tmp_path)


def text_ds(chunks: tuple[str, str], **options: Any) -> Any:
    data, vocab = chunks
    options.setdefault("num_workers", 2)
    return make_tf_dataset(
        JsonLineDataReader(batch_size=BATCH), IdTextDataset(vocab, max_seq_len=SEQ), TFCollator(), data, **options
    )


ALL_IDS = list(range(N_FILES * PER_FILE))


# ---------------------------------------------------------------------------- 1. signature


def test_signature_inferred_from_first_batch(chunks: tuple[str, str]) -> None:
    before = python_threads()
    ds = text_ds(chunks, shuffle=True)
    spec = ds.element_spec
    assert spec == {
        "attention_mask": tf.TensorSpec((None, SEQ), tf.int64),
        "id": tf.TensorSpec((None,), tf.int64),
        "input_ids": tf.TensorSpec((None, SEQ), tf.int64),
        "label": tf.TensorSpec((None,), tf.int64),
        "text": tf.TensorSpec((None,), tf.string),
    }
    source = ds.pyloader
    assert isinstance(source, TFEpochSource)
    # The peek ran through a throwaway inline loader: no thread left, nothing consumed, epoch 0 next.
    assert python_threads() == before and not loader_threads()
    assert source.loader.stats()["batches"] == 0 and source.next_epoch == 0
    first = next(iter(ds))
    with source.loader.iter_epochs([0]) as it:
        expected = next(it)
    np.testing.assert_array_equal(first["id"].numpy(), expected["id"])
    assert [t.decode() for t in first["text"].numpy()] == list(expected["text"])


def test_ragged_keys_and_variable_dims_become_none(chunks: tuple[str, str]) -> None:
    data, vocab = chunks
    reader = JsonLineDataReader(batch_size=BATCH)
    ds = make_tf_dataset(reader, TextDataset(vocab, max_seq_len=SEQ, padding=False), None, data, num_workers=0)
    # TextDataset(padding=False) gives ragged lists: TFCollator pads them per batch and reports them.
    assert ds.element_spec["input_ids"] == tf.TensorSpec((None, None), tf.int64)
    widths = {int(b["input_ids"].shape[1]) for b in ds}
    assert len(widths) > 1  # padded to each batch's longest: the width varies, and that is accepted

    ds = make_tf_dataset(reader, TextDataset(vocab, max_seq_len=SEQ), None, data, num_workers=0,
                         variable_dims={"input_ids": [1]})
    assert ds.element_spec["input_ids"] == tf.TensorSpec((None, None), tf.int64)
    assert ds.element_spec["attention_mask"] == tf.TensorSpec((None, SEQ), tf.int64)


class ShapeDriftReader(DataReader):
    """File ``f-1`` has wider ``x`` rows and float labels: later batches break the inferred signature."""

    def read_file(self, path: str) -> tuple[dict[str, Any], int]:
        second = path.endswith("f-1.txt")
        width = 4 if second and "shape" in path else 3
        labels = [0.5] * 4 if second and "dtype" in path else [1] * 4
        return {"x": [[1.0] * width] * 4, "label": labels}, 4


def drift_files(root: Path, kind: str) -> str:
    d = root / kind
    d.mkdir()
    for i in range(2):
        (d / f"f-{i}.txt").write_text("x")
    return str(d)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("shape", ["'x'", "expected float32 of shape (None, 3)", "got float32 of shape (4, 4)", "variable_dims"]),
        ("dtype", ["'label'", "expected int64 of shape (None,)", "got float32 of shape (4,)"]),
    ],
)
def test_later_batch_mismatch_names_key_expected_and_actual(tmp_path: Path, kind: str, words: list[str]) -> None:
    ds = make_tf_dataset(ShapeDriftReader(batch_size=4), None, None, drift_files(tmp_path, kind), num_workers=1)
    it = iter(ds)
    assert next(it)["x"].shape == (4, 3)  # the first batch matches the signature inferred from it
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        next(it)
    text = str(info.value)
    assert "SignatureMismatchError" in text
    for word in words:
        assert word in text, (word, text)
    del it
    assert wait_until(lambda: not loader_threads())


def test_explicit_signature_is_used_and_checked(chunks: tuple[str, str]) -> None:
    data, vocab = chunks
    sig = {
        "input_ids": tf.TensorSpec((None, SEQ), tf.int64),
        "attention_mask": tf.TensorSpec((None, SEQ), tf.int64),
        "label": tf.TensorSpec((None,), tf.int64),
        "id": tf.TensorSpec((None,), tf.int64),
        "text": tf.TensorSpec((None,), tf.string),
    }
    reader = JsonLineDataReader(batch_size=BATCH)
    # NumpyDataCollator keeps "text" as a '<U..' array (its width varies per batch): still tf.string.
    ds = make_tf_dataset(reader, IdTextDataset(vocab, max_seq_len=SEQ), NumpyDataCollator(), data, sig, num_workers=0)
    assert ds.element_spec == sig
    assert sorted(ids_of(ds)) == ALL_IDS
    bad = dict(sig, label=tf.TensorSpec((None,), tf.string))
    ds = make_tf_dataset(reader, IdTextDataset(vocab, max_seq_len=SEQ), None, data, bad, num_workers=0)
    expected = r"key 'label': expected string of shape \(None,\), got int64"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        next(iter(ds))


def test_check_batch_and_infer_signature_units() -> None:
    batch = {"x": np.zeros((2, 3), np.int32), "s": np.array(["a", "bc"]), "nested": ({"y": [1.5, 2.5]},)}
    sig = infer_signature(batch)
    assert sig["x"] == tf.TensorSpec((None, 3), tf.int32)
    assert sig["s"] == tf.TensorSpec((None,), tf.string)
    assert sig["nested"][0]["y"] == tf.TensorSpec((None,), tf.float64)
    out = check_batch({"x": np.ones((5, 3), np.int16), "s": ["z"] * 5, "nested": ({"y": [1.0] * 5},)}, sig)
    assert out["x"].dtype == np.int32  # safe cast
    with pytest.raises(SignatureMismatchError) as info:
        check_batch({"x": np.zeros((2, 3), np.int32), "s": np.array(["a", "b"])}, sig)
    assert "missing ['nested/0/y']" in str(info.value)
    with pytest.raises(SignatureMismatchError) as info:
        check_batch(dict(batch, x=np.zeros((2, 3), np.int64)), sig)  # int64 -> int32 is not safe
    err = info.value
    assert isinstance(err, PyLoaderError) and err.key == "x"
    assert err.expected == "int32 of shape (None, 3)" and err.actual == "int64 of shape (2, 3)"
    with pytest.raises(SignatureMismatchError, match="holds Python objects of type dict"):
        infer_signature({"o": np.array([{}, {}], dtype=object)})


def test_inference_needs_a_sample(tmp_path: Path, chunks: tuple[str, str]) -> None:
    data, _ = chunks
    # drop_last with fewer samples than a batch: the peek still sees the short batch's signature.
    ds = make_tf_dataset(JsonLineDataReader(batch_size=1000), None, None, data, drop_last=True, num_workers=0)
    assert ds.element_spec["id"] == tf.TensorSpec((None,), tf.int64)
    assert list(ds) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    for i in range(2):
        (empty / f"e{i}.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="cannot infer output_signature: none of the 2 files holds a sample"):
        make_tf_dataset(JsonLineDataReader(), None, None, str(empty), num_workers=0)


# ---------------------------------------------------------------------------- 2. epochs, chaining


def test_each_iteration_is_the_next_epoch_reshuffled_exactly_once(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, shuffle=True, random_seed=7)
    loader = ds.pyloader.loader
    passes = [ids_of(ds) for _ in range(3)]
    for epoch, ids in enumerate(passes):
        assert sorted(ids) == ALL_IDS  # every sample exactly once
        with loader.iter_epochs([epoch]) as it:  # deterministic from (seed, epoch)
            assert ids == [int(i) for b in it for i in b["id"]]
    assert passes[0] != passes[1] != passes[2]
    assert ds.pyloader.next_epoch == 3
    # Same seed, new dataset: the same stream; set_epoch jumps to an epoch.
    again = text_ds(chunks, shuffle=True, random_seed=7, num_workers=1)
    assert ids_of(again) == passes[0]
    again.pyloader.set_epoch(2)
    assert ids_of(again) == passes[2]
    assert wait_until(lambda: not loader_threads())


def test_chaining_map_prefetch_take_unbatch_repeat(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, shuffle=True)
    pairs = ds.map(lambda b: (b["input_ids"], b["label"]), num_parallel_calls=tf.data.AUTOTUNE)
    pairs = pairs.prefetch(tf.data.AUTOTUNE)
    x, y = next(iter(pairs.take(1)))
    assert x.shape == (BATCH, SEQ) and x.dtype == tf.int64 and y.shape == (BATCH,)
    rebatched = ds.unbatch().batch(32)
    sizes = [int(b["id"].shape[0]) for b in rebatched]
    assert sizes == [32, 32, 32, 19]
    assert sorted(int(i) for b in rebatched for i in b["id"].numpy()) == ALL_IDS
    twice = ids_of(ds.repeat(2))  # .repeat() runs two more epochs
    assert len(twice) == 2 * len(ALL_IDS) and sorted(twice[: len(ALL_IDS)]) == ALL_IDS
    assert ds.pyloader.next_epoch == 5  # take(1), unbatch x2, repeat(2)
    assert wait_until(lambda: not loader_threads())


def test_count_batches_gives_known_cardinality(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, count_batches=True)
    assert int(ds.cardinality()) == -(-len(ALL_IDS) // BATCH) == ds.pyloader.loader.batches_per_epoch()
    assert sum(1 for _ in ds) == int(ds.cardinality())
    assert int(text_ds(chunks).cardinality()) == tf.data.UNKNOWN_CARDINALITY


# ---------------------------------------------------------------------------- 3. TFCollator


def test_tf_collator_stable_dtypes_and_strings() -> None:
    c = TFCollator()
    a = c.collate_batch({"i": [1, 2], "f": np.array([1.0, 2.0]), "b": [True, False], "s": ["a", "bcd"],
                         "raw": [b"x", b"yz"], "tok": [["a", "b"], ["c"]], "ids": [[1, 2, 3], [4]]})
    b = c.collate_batch({"i": np.array([3, 4], np.int8), "f": [0.5, 1], "b": np.array([True, True]),
                         "s": np.array(["longer text", "x"]), "raw": [b"", b"q"], "tok": [["d"], ["e", "f", "g"]],
                         "ids": [[5], [6, 7]]})
    for out in (a, b):
        assert out["i"].dtype == np.int64 and out["f"].dtype == np.float32 and out["b"].dtype == np.bool_
        assert out["s"].dtype == object and out["raw"].dtype == object and out["tok"].dtype == object
        assert out["ids"].dtype == np.int64
    assert list(a["s"]) == ["a", "bcd"] and a["tok"].tolist() == [["a", "b"], ["c", ""]]
    assert a["ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert c.variable_keys == {"tok", "ids"}
    assert tf.constant(b["tok"]).dtype == tf.string
    small = TFCollator(int_dtype=np.int32, float_dtype=np.float16, as_tensors=True)
    small = small.collate_batch({"i": [1], "f": [1.0]})
    assert small["i"].dtype == tf.int32 and small["f"].dtype == tf.float16
    with pytest.raises(DataFormatError, match="key 'o' holds dict values"):
        TFCollator().collate_batch({"o": [{"a": 1}, {"b": 2}]})
    with pytest.raises(ConfigError, match="int_dtype"):
        TFCollator(int_dtype=np.int16)


# ---------------------------------------------------------------------------- 2 + 5. Keras fit, lifecycle


def tiny_model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((SEQ,), dtype="int64"),
            keras.layers.Embedding(len(WORDS) + 2, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    return model


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # Keras, on unknown cardinality: expected
def test_keras_fit_two_epochs_covers_every_sample_and_leaks_nothing(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, shuffle=True, random_seed=3)
    loader = ds.pyloader.loader
    seen: list[np.ndarray] = []

    def record(ids: Any) -> Any:
        seen.append(ids.numpy().copy())
        return ids

    def to_xy(b: dict[str, Any]) -> tuple[Any, Any]:
        ids = tf.py_function(record, [b["id"]], tf.int64)
        with tf.control_dependencies([ids]):
            x = tf.identity(b["input_ids"])
        return x, tf.cast(b["label"], tf.float32)

    train = ds.map(to_xy).prefetch(tf.data.AUTOTUNE)
    model = tiny_model()
    threads_before, children_before = python_threads(), len(children())

    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]
    flat = [int(i) for arr in seen for i in arr]
    n = len(ALL_IDS)
    assert len(flat) == 2 * n
    for epoch in range(2):  # each fit epoch is one loader epoch: every sample once, in the planned order
        assert sorted(flat[epoch * n : (epoch + 1) * n]) == ALL_IDS
        with loader.iter_epochs([epoch]) as it:
            assert flat[epoch * n : (epoch + 1) * n] == [int(i) for b in it for i in b["id"]]
    assert flat[:n] != flat[n:]  # reshuffled
    assert ds.pyloader.next_epoch == 2

    # Workers are stopped after fit, and a second and third fit leak no thread (Python's or the OS's: TensorFlow's
    # pools are started by the first fit) and no process.
    assert wait_until(lambda: not loader_threads() and python_threads() == threads_before)
    os_threads = psutil.Process().num_threads()
    for _ in range(2):
        model.fit(train, epochs=2, verbose=0, shuffle=False)
        assert wait_until(lambda: not loader_threads() and python_threads() == threads_before), loader_threads()
        assert wait_until(lambda: psutil.Process().num_threads() <= os_threads), psutil.Process().num_threads()
        assert len(children()) == children_before
        assert ds.pyloader.active_iterations() == 0
    assert ds.pyloader.next_epoch == 6


def test_abandoning_an_iterator_mid_epoch_stops_thread_workers(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, shuffle=True, num_workers=2, max_queue_size=2).prefetch(2)
    source_ds = text_ds(chunks, num_workers=2)
    for dataset in (ds, source_ds):
        it = iter(dataset)
        next(it)
        assert len(loader_threads()) == 2
        del it
        assert wait_until(lambda: not loader_threads()), loader_threads()
    # The abandoned pass used up epoch 0; the next pass is epoch 1, complete.
    assert source_ds.pyloader.next_epoch == 1
    assert sorted(ids_of(source_ds)) == ALL_IDS
    # Dropping the dataset and its iterator together also stops the workers.
    it = iter(text_ds(chunks, num_workers=2))
    next(it)
    assert loader_threads()
    del it
    assert wait_until(lambda: not loader_threads())


def test_abandoning_an_iterator_stops_worker_processes(chunks: tuple[str, str]) -> None:
    data, _ = chunks
    before = len(children())
    # Core classes only: the spawned workers do not import this test module (and TensorFlow).
    ds = make_tf_dataset(JsonLineDataReader(batch_size=BATCH), None, None, data, num_workers=2,
                         worker_type="process", max_queue_size=2, persistent_workers=False)
    it = iter(ds)
    first = next(it)
    assert first["input_text"].dtype == tf.string
    assert len(children()) >= before + 2
    del it
    assert wait_until(lambda: len(children()) == before), children()


def test_process_workers_start_once_and_serve_every_epoch(chunks: tuple[str, str]) -> None:
    """Each Keras epoch is a new pass; the adapter keeps its process workers, so start-up is paid once."""
    data, _ = chunks
    before = {p.pid for p in children()}
    ds = make_tf_dataset(JsonLineDataReader(batch_size=BATCH), None, None, data, num_workers=2,
                         worker_type="process", shuffle=True)
    seen = []
    for epoch in range(3):
        assert sorted(ids_of(ds)) == ALL_IDS
        seen.append({p.pid for p in children()} - before)
    assert len(seen[0]) == 2 and seen[0] == seen[1] == seen[2]
    ds.pyloader.close()
    assert wait_until(lambda: {p.pid for p in children()} - before == set())


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_epoch_sync_callback_pins_fit_epochs_to_loader_epochs(chunks: tuple[str, str]) -> None:
    ds = text_ds(chunks, shuffle=True, num_workers=1)
    seen: list[int] = []

    def record(ids: Any) -> Any:
        seen.extend(int(i) for i in ids.numpy())
        return ids

    def to_xy(b: dict[str, Any]) -> tuple[Any, Any]:
        ids = tf.py_function(record, [b["id"]], tf.int64)
        with tf.control_dependencies([ids]):
            return tf.identity(b["input_ids"]), tf.cast(b["label"], tf.float32)

    next(iter(ds))  # an iteration outside fit uses up epoch 0 ...
    # ... but fit epochs 3 and 4 (initial_epoch=3) read loader epochs 13 and 14 with the callback.
    tiny_model().fit(ds.map(to_xy), epochs=5, initial_epoch=3, verbose=0, shuffle=False,
                     callbacks=[EpochSyncCallback(ds, offset=10)])
    loader = ds.pyloader.loader
    for k, epoch in enumerate((13, 14)):
        with loader.iter_epochs([epoch]) as it:
            assert seen[k * len(ALL_IDS) : (k + 1) * len(ALL_IDS)] == [int(i) for b in it for i in b["id"]]
    assert ds.pyloader.next_epoch == 15
    with pytest.raises(ConfigError, match="chained datasets lose the link"):
        EpochSyncCallback(ds.map(to_xy))


class FailingReader(JsonLineDataReader):
    """Fails on the third chunk."""

    def read_file(self, path: str) -> tuple[dict[str, Any], int]:
        if path.endswith("chunk-002.jsonl"):
            raise DataFormatError("broken chunk", path, 7)
        return super().read_file(path)


def test_reader_error_mid_epoch_surfaces_and_stops_workers(chunks: tuple[str, str]) -> None:
    data, _ = chunks
    ds = make_tf_dataset(FailingReader(batch_size=BATCH), None, None, data, num_workers=2)
    expected = r"DataFormatError: .*chunk-002.jsonl, record 7: broken chunk"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        for _ in ds:
            pass
    assert wait_until(lambda: not loader_threads())
    assert ds.pyloader.active_iterations() == 0


# ---------------------------------------------------------------------------- 4. tf.distribute


def test_distribute_two_input_pipelines_disjoint_exactly_once_equal_batches(chunks: tuple[str, str]) -> None:
    data, vocab = chunks
    fn = make_distributed_dataset_fn(JsonLineDataReader(batch_size=BATCH), IdTextDataset(vocab, max_seq_len=SEQ),
                                     None, data, global_batch_size=10, shuffle=True, num_workers=1)
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2)
                for i in range(2)]
    datasets = [fn(ctx) for ctx in contexts]
    assert datasets[0].element_spec == datasets[1].element_spec == fn.output_signature
    per_rank = len(ALL_IDS) // 2  # 57 each, 1 dropped
    for epoch in range(2):
        shards = []
        counts = []
        for ds in datasets:
            batches = [b["id"].numpy() for b in ds]
            assert all(len(b) <= 5 for b in batches)  # per-replica batch size: 10 // 2 replicas
            counts.append(len(batches))
            shards.append([int(i) for b in batches for i in b])
        assert counts[0] == counts[1] == -(-per_rank // 5) == int(datasets[0].cardinality())
        assert len(shards[0]) == len(shards[1]) == per_rank
        assert not set(shards[0]) & set(shards[1])  # disjoint
        union = set(shards[0]) | set(shards[1])
        assert len(union) == 2 * per_rank and union <= set(ALL_IDS)
    assert [fn.sources[i].loader.stats()["dropped_samples"] for i in range(2)] == [2, 2]  # 1 per epoch
    EpochSyncCallback(fn)  # accepted as a target: syncs every input pipeline
    # The same function works with a real strategy (one input pipeline here).
    dist = tf.distribute.get_strategy().distribute_datasets_from_function(fn)
    assert sorted(int(i) for b in dist for i in b["id"].numpy()) == ALL_IDS
    with pytest.raises(ConfigError, match="InputContext"):
        make_distributed_dataset_fn("jsonl", None, None, data, rank=0)
    assert wait_until(lambda: not loader_threads())
