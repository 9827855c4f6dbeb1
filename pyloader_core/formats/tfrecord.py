"""TFRecord chunks of ``tf.train.Example`` records, read without TensorFlow or protobuf.

A TFRecord file is a sequence of frames::

    uint64 length (little-endian) | uint32 masked crc32c(length) | data[length] | uint32 masked crc32c(data)

Both checksums are verified (CRC-32C from ``google-crc32c`` or ``crc32c`` when installed, else a
pure-Python table). ``data`` is a serialized ``tf.train.Example``, decoded here from its wire format:
``Example{features=1: Features{feature=1: map<string, Feature>}}``, ``Feature`` being one of
``bytes_list=1``, ``float_list=2``, ``int64_list=3`` (packed or unpacked repeated values).

Gzip-compressed files (``.tfrecord.gz``, TensorFlow's ``compression_type="GZIP"``) are read through
:mod:`pyloader_core.storage`; TensorFlow's ``"ZLIB"`` framing is not supported.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np

from pyloader_core.errors import DataFormatError
from pyloader_core.formats.base import Format, LineSource, check_names, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.skips import report_bad_record
from pyloader_core.storage.compression import _compressed_data_errors_named, is_compressed, open_binary

__all__ = ["FORMAT", "TFRecordDataReader", "crc32c", "decode_example", "iter_tfrecords"]

logger = logging.getLogger(__name__)


def _table_entry(c: int) -> int:
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c


_TABLE = [_table_entry(n) for n in range(256)]


def _crc32c_py(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, in pure Python."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _fast_crc32c() -> Any:
    try:  # google-crc32c (the one TensorFlow's own tools use)
        import google_crc32c

        return lambda data: google_crc32c.value(bytes(data))
    except ImportError:
        pass
    try:
        import crc32c as _crc32c_mod

        return lambda data: _crc32c_mod.crc32c(bytes(data))
    except ImportError:
        return None


crc32c = _fast_crc32c() or _crc32c_py
crc32c.__doc__ = "CRC-32C (Castagnoli) of ``data``."


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    return _masked(crc32c(data))


_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    while 0 < len(data) < n and (more := f.read(n - len(data))):
        data += more
    return data


def _header(f: BinaryIO, path: str, record: int) -> tuple[int, bytes] | None:
    """The next frame's data length (its CRC checked) and its 12 header bytes; ``None`` at the end."""
    head = _read_exactly(f, 12)
    if not head:
        return None
    if len(head) < 12:
        raise DataFormatError(f"truncated TFRecord: {len(head)} of the 12 header bytes", path, record)
    length, length_crc = _HEADER.unpack(head)
    if masked_crc32c(head[:8]) != length_crc:
        raise DataFormatError("corrupt TFRecord: the length's CRC does not match (not a TFRecord file?)", path, record)
    return length, head


def iter_tfrecords(f: BinaryIO, path: str, *, verify: bool = True, frames: bool = False) -> Iterator[bytes]:
    """The records of an open TFRecord stream: each one's data (``frames=True``: the whole frame).

    Raises :class:`DataFormatError` naming ``path`` and the 1-based record number on a CRC mismatch
    (``verify=False`` checks the length CRCs only) or a truncated record.
    """
    record = 0
    while True:
        record += 1
        got = _header(f, path, record)
        if got is None:
            return
        length, head = got
        body = _read_exactly(f, length + 4)
        if len(body) < length + 4:
            raise DataFormatError(
                f"truncated TFRecord: {len(body)} of the {length + 4} data and CRC bytes", path, record
            )
        data = body[:length]
        if verify and masked_crc32c(data) != _CRC.unpack_from(body, length)[0]:
            raise DataFormatError("corrupt TFRecord: the data's CRC does not match", path, record)
        yield head + body if frames else data


def count_tfrecords(path: str) -> int:
    """The record count of ``path`` by its framing: headers only (length CRCs checked), data skipped."""
    n = 0
    with open_binary(path) as f, _compressed_data_errors_named(path):
        seekable = not is_compressed(path) and f.seekable()
        size = f.seek(0, io.SEEK_END) if seekable else 0
        if seekable:
            f.seek(0)
        pos = 0
        while True:
            got = _header(f, path, n + 1)
            if got is None:
                return n
            length = got[0]
            if seekable:
                pos += 12 + length + 4
                if pos > size:
                    raise DataFormatError(
                        f"truncated TFRecord: the record needs {pos - size} bytes more than the file has", path, n + 1
                    )
                f.seek(pos)
            else:
                skipped = len(_read_exactly(f, length + 4))
                if skipped < length + 4:
                    raise DataFormatError(
                        f"truncated TFRecord: {skipped} of the {length + 4} data and CRC bytes", path, n + 1
                    )
            n += 1



class _ProtoError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of a message: varints as int, length-delimited as bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _ProtoError("truncated length-delimited field")
            value = buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):  # fixed64, fixed32
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _ProtoError("truncated fixed-size field")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if field == 0:
            raise _ProtoError("field number 0")
        yield field, wire, value


def _signed64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(_signed64(v))
    return out


#: Feature kinds by their field number in ``tf.train.Feature``.
_KINDS = {1: "bytes", 2: "float", 3: "int64"}


def _feature(buf: bytes) -> tuple[str | None, list[Any]]:
    """``(kind, values)`` of a serialized ``tf.train.Feature`` (kind ``None``: no list set)."""
    kind: str | None = None
    values: list[Any] = []
    for field, wire, value in _fields(buf):
        if field not in _KINDS or wire != 2:
            continue  # unknown fields are skipped, as protobuf does
        if _KINDS[field] != kind:  # oneof: the last one set wins
            kind, values = _KINDS[field], []
        for f2, w2, v2 in _fields(value):
            if f2 != 1:
                continue
            if kind == "bytes":
                if w2 != 2:
                    raise _ProtoError("BytesList value of the wrong wire type")
                values.append(bytes(v2))
            elif kind == "float":
                if w2 == 2:  # packed
                    if len(v2) % 4:
                        raise _ProtoError("packed FloatList not a multiple of 4 bytes")
                    values.extend(struct.unpack(f"<{len(v2) // 4}f", v2))
                elif w2 == 5:
                    values.append(struct.unpack("<f", v2)[0])
                else:
                    raise _ProtoError("FloatList value of the wrong wire type")
            else:
                if w2 == 2:  # packed
                    values.extend(_packed_varints(v2))
                elif w2 == 0:
                    values.append(_signed64(v2))
                else:
                    raise _ProtoError("Int64List value of the wrong wire type")
    return kind, values


def decode_example(data: bytes) -> dict[str, tuple[str | None, list[Any]]]:
    """A serialized ``tf.train.Example`` as ``{key: (kind, values)}``; kind is ``"bytes"``, ``"float"``,
    ``"int64"`` or ``None`` (a feature with no list set).

    Raises:
        ValueError: ``data`` is not a well-formed ``Example``.

    Example::

        decode_example(example.SerializeToString())  # {'label': ('int64', [3]), ...}
    """
    out: dict[str, tuple[str | None, list[Any]]] = {}
    try:
        for field, wire, features in _fields(data):
            if field != 1 or wire != 2:
                continue
            for f2, w2, entry in _fields(features):
                if f2 != 1 or w2 != 2:
                    continue
                key, value = b"", b""
                for f3, w3, v3 in _fields(entry):
                    if f3 == 1 and w3 == 2:
                        key = v3
                    elif f3 == 2 and w3 == 2:
                        value = v3
                out[bytes(key).decode("utf-8")] = _feature(value)  # a repeated key: the last wins
    except UnicodeDecodeError as exc:
        raise _ProtoError(f"feature name is not UTF-8: {exc}") from None
    return out


_DTYPES = {"float": np.float32, "int64": np.int64}


def _column(kind: str | None, values: list[list[Any]], squeeze: bool, utf8: bool) -> Any:
    if utf8 and kind == "bytes":
        values = [[v.decode("utf-8") for v in vs] for vs in values]
    if squeeze and values and all(len(vs) == 1 for vs in values):
        if kind in _DTYPES:
            return np.array([vs[0] for vs in values], dtype=_DTYPES[kind])
        return [vs[0] for vs in values]
    if kind in _DTYPES:
        dtype = _DTYPES[kind]
        return [np.array(vs, dtype=dtype) for vs in values]
    return values


class TFRecordDataReader(DataReader):
    """Reads TFRecord files of ``tf.train.Example`` records (``.tfrecord``, ``.tfrecord.gz``) into columns.

    No TensorFlow or protobuf is imported: the framing and the ``Example`` are decoded here, and both
    CRCs of every record are checked. Each feature key is a column; without ``features`` every
    record must have the first record's key set (with ``features``, only those keys are read and a
    record lacking one is bad).

    Values: ``int64_list`` features as ``int64``, ``float_list`` as ``float32``, ``bytes_list`` as
    ``bytes`` (``str`` with ``utf8=True``). With ``squeeze`` (the default), a column whose every
    record in the file holds exactly one value becomes a column of scalars (a numpy array for
    numbers, a list of bytes); any other column holds one value list per record (a numpy array for
    numbers, a list of bytes). ``squeeze=False`` keeps lists everywhere.

    A bad CRC, a truncated record, an undecodable ``Example``, a key set that differs or a feature
    whose kind changes gives a :class:`~pyloader_core.errors.DataFormatError` naming the file and
    the 1-based record number; a corrupt ``Example`` or key drift is reported through
    :func:`~pyloader_core.skips.report_bad_record` (skipped under ``on_error="skip"``), while a
    framing error (bad CRC, truncation) ends the file and is always raised.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        features: the feature keys to read, in this order; ``None`` reads every key.
        squeeze: one-value lists become scalars (see above).
        utf8: decode ``bytes_list`` values as UTF-8 ``str``.
        verify_crc: check each record's data CRC (the length CRCs are always checked).

    Example::

        reader = TFRecordDataReader(batch_size=32, features=["image", "label"])
        columns, n = reader.read_file("data/train-00000-of-00010.tfrecord")
        columns["label"][:3]  # array([3, 1, 4])
    """

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        features: Sequence[str] | None = None,
        squeeze: bool = True,
        utf8: bool = False,
        verify_crc: bool = True,
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        self.features: list[str] | None = check_names(features, "features")
        self.squeeze = bool(squeeze)
        self.utf8 = bool(utf8)
        self.verify_crc = bool(verify_crc)

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({feature: values}, n_sample)``."""
        check_reader_fits(self, path)
        wanted = self.features
        keys: list[str] | None = list(wanted) if wanted is not None else None
        kinds: dict[str, str | None] = {}
        values: dict[str, list[list[Any]]] = {k: [] for k in keys} if keys is not None else {}
        n = 0
        with open_binary(path) as f, _compressed_data_errors_named(path):
            for record, data in enumerate(iter_tfrecords(f, path, verify=self.verify_crc), 1):
                try:
                    try:
                        example = decode_example(data)
                    except ValueError as exc:
                        raise DataFormatError(f"not a tf.train.Example: {exc}", path, record) from None
                    if keys is None:
                        keys = list(example)
                        values = {k: [] for k in keys}
                    elif wanted is None and example.keys() != values.keys():
                        raise DataFormatError(_drift(keys, example), path, record)
                    elif wanted is not None and not all(k in example for k in wanted):
                        missing = [k for k in wanted if k not in example]
                        raise DataFormatError(f"record lacks feature(s) {missing}", path, record)
                    for key in keys:
                        kind = example[key][0]
                        known = kinds.get(key)
                        if kind is not None and known is not None and kind != known:
                            raise DataFormatError(
                                f"feature {key!r} is a {kind}_list here, a {known}_list in earlier records",
                                path,
                                record,
                            )
                except DataFormatError as exc:
                    report_bad_record(exc, path, record)
                    continue
                for key in keys:
                    kind, vals = example[key]
                    if kind is not None:
                        kinds.setdefault(key, kind)
                    values[key].append(vals)
                n += 1
        columns = {k: _column(kinds.get(k), v, self.squeeze, self.utf8) for k, v in values.items()}
        logger.debug("read %d records from %s", n, path)
        return columns, n

    def count_samples(self, path: str) -> int:
        """The record count by the framing (length CRCs checked, no data read where the file seeks)."""
        return count_tfrecords(path)


def _drift(keys: Sequence[str], example: dict[str, Any]) -> str:
    missing = sorted(set(keys) - example.keys())
    unexpected = sorted(example.keys() - set(keys))
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    return "features differ from the file's first record: " + ", ".join(parts)


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    with open_binary(path) as f, _compressed_data_errors_named(path):
        for data in iter_tfrecords(f, path):
            try:
                example = decode_example(data)
            except ValueError as exc:
                raise DataFormatError(f"not a tf.train.Example: {exc}", path, 1) from None
            names = {k: kind or "empty" for k, (kind, _) in example.items()}
            types = {k: names[k] if len(v) == 1 else f"list[{names[k]}]" for k, (_, v) in example.items()}
            return types, {k: v[0] if len(v) == 1 else v for k, (_, v) in example.items()}
    return None


class _SplitRecords(LineSource):
    """``split``'s framing: one whole TFRecord frame a record (both CRCs checked), copied as bytes."""

    def records(self, path: str) -> Iterator[bytes]:
        with open_binary(path) as f, _compressed_data_errors_named(path):
            yield from iter_tfrecords(f, path, frames=True)


FORMAT = Format(
    name="tfrecord",
    suffixes=(".tfrecord", ".tfrecords", ".tfr"),
    aliases=("tfrecords",),
    reader=TFRecordDataReader,
    first_record=_first_record,
    split_source=_SplitRecords,
)
