"""``tf.data`` pipelines doing the shared work (imported only by the TensorFlow rows).

``tf-vectorised`` and ``tf-per-element`` do it with TensorFlow ops: JSON is "parsed" with
``tf.strings.regex_replace`` (core TensorFlow has no JSON-lines parser; the generated lines are
``json.dumps`` output whose words hold no quotes or escapes, so the regexes are exact here), words are
split with ``tf.strings.split`` and looked up in a ``StaticHashTable`` built from the same vocab file
(id = line number, unknown words -> ``<unk>``), truncated and padded to 128. The ``py_function``
variants call the shared Python encode (:class:`~pyloader_core.TextDataset`) instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.workload import BATCH, MAX_SEQ_LEN, SPECIALS, make_encoder  # noqa: E402

__all__ = ["tf_per_element", "tf_pyfunc_batched", "tf_pyfunc_element", "tf_vectorised"]

_TEXT_RE = r'^.*"input_text": "([^"]*)".*$'
_LABEL_RE = r'^.*"label": (\d+).*$'

try:
    import orjson as _json

    _loads = _json.loads
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    _loads = _json.loads


def _table(vocab: str) -> Any:
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ),
        default_value=SPECIALS.index("<unk>"),
    )


def _lines(ctx: Any) -> Any:
    return tf.data.TextLineDataset(tf.data.Dataset.from_tensor_slices(ctx.files))


def _iterate(ds: Any) -> Iterator[tuple[Any, Any, Any]]:
    for ids, mask, label in ds:
        yield ids, mask, label


def tf_vectorised(ctx: Any) -> Iterator[tuple[Any, Any, Any]]:
    table = _table(ctx.vocab)

    def parse(lines: Any) -> tuple[Any, Any, Any]:
        text = tf.strings.regex_replace(lines, _TEXT_RE, r"\1")
        label = tf.strings.to_number(tf.strings.regex_replace(lines, _LABEL_RE, r"\1"), tf.int64)
        ids = tf.ragged.map_flat_values(table.lookup, tf.strings.split(text))[:, :MAX_SEQ_LEN]
        mask = tf.sequence_mask(ids.row_lengths(), MAX_SEQ_LEN, dtype=tf.int64)
        return ids.to_tensor(default_value=0, shape=[None, MAX_SEQ_LEN]), mask, label

    ds = _lines(ctx).batch(BATCH).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return _iterate(ds)


def tf_per_element(ctx: Any) -> Iterator[tuple[Any, Any, Any]]:
    table = _table(ctx.vocab)

    def parse(line: Any) -> tuple[Any, Any, Any]:
        text = tf.strings.regex_replace(line, _TEXT_RE, r"\1")
        label = tf.strings.to_number(tf.strings.regex_replace(line, _LABEL_RE, r"\1"), tf.int64)
        ids = table.lookup(tf.strings.split(text))[:MAX_SEQ_LEN]
        return ids, tf.ones_like(ids), label

    ds = (
        _lines(ctx)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .padded_batch(BATCH, padded_shapes=([MAX_SEQ_LEN], [MAX_SEQ_LEN], []))
        .prefetch(tf.data.AUTOTUNE)
    )
    return _iterate(ds)


def _py_encoder(vocab: str) -> Any:
    encoder = make_encoder(vocab)

    def encode(lines: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        records = [_loads(line) for line in lines.numpy()]
        out = encoder.batch_encode(
            {"input_text": [r["input_text"] for r in records], "label": [r["label"] for r in records]}
        )
        return out["input_ids"], out["attention_mask"], out["label"].astype(np.int64)

    return encode


def tf_pyfunc_batched(ctx: Any) -> Iterator[tuple[Any, Any, Any]]:
    encode = _py_encoder(ctx.vocab)

    def parse(lines: Any) -> tuple[Any, Any, Any]:
        ids, mask, label = tf.py_function(encode, [lines], Tout=[tf.int64, tf.int64, tf.int64])
        return ids, mask, label

    ds = _lines(ctx).batch(BATCH).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return _iterate(ds)


def tf_pyfunc_element(ctx: Any) -> Iterator[tuple[Any, Any, Any]]:
    encode = _py_encoder(ctx.vocab)

    def parse(line: Any) -> tuple[Any, Any, Any]:
        ids, mask, label = tf.py_function(lambda x: encode(tf.reshape(x, [1])), [line],
                                          Tout=[tf.int64, tf.int64, tf.int64])
        return tf.reshape(ids, [MAX_SEQ_LEN]), tf.reshape(mask, [MAX_SEQ_LEN]), tf.reshape(label, [])

    ds = _lines(ctx).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    return _iterate(ds)
