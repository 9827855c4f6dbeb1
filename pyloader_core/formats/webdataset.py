"""WebDataset tar shards: one sample per key, one column per member extension.

As WebDataset groups them, a member ``dir/000123.seg.png`` belongs to the sample of key
``dir/000123`` (the path up to the first dot of its base name) and holds its column ``seg.png``
(the rest, lower-cased). A sample's members must be consecutive in the tar. Directories, members
without an extension, and hidden (``.x``) or ``__``-prefixed base names are skipped. Shards may be
gzip-compressed (``.tar.gz``), read through :mod:`pyloader_core.storage`.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

from pyloader_core.errors import DataFormatError
from pyloader_core.formats.base import Format, LineSource, check_names, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.skips import report_bad_record
from pyloader_core.storage.compression import _compressed_data_errors_named, is_compressed, open_binary

__all__ = ["FORMAT", "KEY", "WebDatasetReader", "decode_member", "split_member_name"]

logger = logging.getLogger(__name__)

#: The column holding each sample's key, as WebDataset names it.
KEY = "__key__"

_TAR_ERRORS = (tarfile.TarError, EOFError)


def split_member_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a tar member's name, or ``None`` for a member WebDataset skips.

    Example::

        split_member_name("shard/000123.seg.PNG")  # ('shard/000123', 'seg.png')
        split_member_name("README")                # None
    """
    slash = name.rfind("/")
    base = name[slash + 1 :]
    dot = base.find(".")
    if dot <= 0 or dot == len(base) - 1 or base.startswith("__"):
        return None  # no extension, hidden, or WebDataset metadata
    return name[: slash + 1 + dot], base[dot + 1 :].lower()


def _decode_npy(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


_DECODERS: dict[str, Any] = {
    "txt": lambda b: b.decode("utf-8"),
    "text": lambda b: b.decode("utf-8"),
    "cls": lambda b: int(b.strip()),
    "cls2": lambda b: int(b.strip()),
    "index": lambda b: int(b.strip()),
    "id": lambda b: int(b.strip()),
    "json": json.loads,
    "jsn": json.loads,
    "npy": _decode_npy,
}


def decode_member(ext: str, data: bytes) -> Any:
    """``decode=True``'s value of a member: by the extension's last part, else ``data`` as it is.

    ``txt``/``text``: ``str`` (UTF-8); ``cls``/``cls2``/``index``/``id``: ``int``; ``json``/``jsn``:
    the JSON value; ``npy``: a numpy array. Raises ``ValueError`` when the member does not decode.
    """
    decoder = _DECODERS.get(ext.rsplit(".", 1)[-1])
    return decoder(data) if decoder is not None else data


def _open_tar(f: Any, path: str, stream: bool = True) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=f, mode="r|" if stream else "r:")
    except _TAR_ERRORS as exc:
        raise DataFormatError(f"not a tar file: {exc}", path) from None


def _members(path: str, *, data: bool) -> Iterator[tuple[tarfile.TarInfo, str, str, bytes | None]]:
    """``(member, key, ext, content)`` of ``path``'s sample members (content ``None`` unless ``data``).

    Only headers are read when ``data`` is false and the file seeks (an uncompressed shard).
    """
    with open_binary(path) as f, _compressed_data_errors_named(path):
        stream = data or is_compressed(path) or not f.seekable()
        tar = _open_tar(f, path, stream=stream)
        try:
            while True:
                try:
                    member = tar.next()
                except _TAR_ERRORS as exc:
                    raise DataFormatError(f"corrupt or truncated tar: {exc}", path) from None
                if member is None:
                    return
                if not member.isfile():
                    continue
                parts = split_member_name(member.name)
                if parts is None:
                    continue
                content = None
                if data:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    try:
                        content = extracted.read()
                    except _TAR_ERRORS as exc:
                        raise DataFormatError(f"corrupt or truncated tar at {member.name}: {exc}", path) from None
                    if len(content) != member.size:
                        raise DataFormatError(f"truncated tar: member {member.name} is cut short", path)
                yield member, parts[0], parts[1], content
                if not stream:
                    tar.members = []  # headers only: keep no list of every member
        finally:
            tar.close()


def _samples(path: str) -> Iterator[tuple[int, str, list[tuple[tarfile.TarInfo, str, bytes]]]]:
    """``(sample number, key, [(member, ext, content)])`` of ``path``, members grouped by consecutive key."""
    number, key, group = 0, None, []
    for member, k, ext, content in _members(path, data=True):
        if k != key:
            if group:
                yield number, key, group  # type: ignore[misc]
            number, key, group = number + 1, k, []
        group.append((member, ext, content))  # type: ignore[arg-type]
    if group:
        yield number, key, group  # type: ignore[misc]


class WebDatasetReader(DataReader):
    """Reads WebDataset tar shards (``.tar``, ``.tar.gz``) into columns: one sample per key.

    Columns are named by member extension (``jpg``, ``cls``, ``seg.png``), plus :data:`KEY`
    (``"__key__"``, the sample's key as a ``str``). Without ``columns``, every sample must have the
    first sample's extensions; with ``columns``, only those are read (others are ignored) and a
    sample lacking one is bad. Values are the members' bytes, as WebDataset leaves them;
    ``decode=True`` turns ``txt``/``text`` into ``str``, ``cls``/``cls2``/``index``/``id`` into
    ``int``, ``json`` into its value and ``npy`` into a numpy array (see :func:`decode_member`).

    A bad sample (a missing or unexpected column, a repeated extension, a key whose members are not
    consecutive, a member that does not decode) gives a
    :class:`~pyloader_core.errors.DataFormatError` naming the file, the 1-based sample number and
    the key, reported through :func:`~pyloader_core.skips.report_bad_record` (skipped under
    ``on_error="skip"``). A file that is not a tar, or is truncated, is always raised.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        columns: the extensions to read, in this order; ``None`` reads the first sample's.
        decode: decode the known extensions (see above).

    Example::

        reader = WebDatasetReader(batch_size=64, columns=["jpg", "cls"], decode=True)
        columns, n = reader.read_file("shards/train-000000.tar")
        columns["cls"][:3], columns["__key__"][:1]  # [3, 1, 4], ['train/000000']
    """

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        columns: Sequence[str] | None = None,
        decode: bool = False,
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        self.columns: list[str] | None = check_names(columns, "columns")
        if self.columns is not None and KEY in self.columns:
            self.columns.remove(KEY)
        self.decode = bool(decode)

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({"__key__": keys, ext: values, ...}, n_sample)``."""
        check_reader_fits(self, path)
        wanted = self.columns
        exts: list[str] | None = list(wanted) if wanted is not None else None
        out: dict[str, list[Any]] = {KEY: [], **{e: [] for e in exts}} if exts is not None else {}
        seen: set[str] = set()
        n = 0
        for number, key, group in _samples(path):
            try:
                if key in seen:
                    raise DataFormatError(f"sample {key!r}: its members are not consecutive in the tar", path, number)
                seen.add(key)
                values: dict[str, bytes] = {}
                for member, ext, content in group:
                    if ext in values:
                        why = f"sample {key!r}: member {member.name} repeats extension {ext!r}"
                        raise DataFormatError(why, path, number)
                    values[ext] = content
                if exts is None:
                    exts = list(values)
                    out = {KEY: [], **{e: [] for e in exts}}
                elif wanted is None and values.keys() != set(exts):
                    raise DataFormatError(f"sample {key!r}: {_drift(exts, values)}", path, number)
                elif wanted is not None and not all(e in values for e in wanted):
                    missing = [e for e in wanted if e not in values]
                    raise DataFormatError(f"sample {key!r} lacks column(s) {missing}", path, number)
                row = {e: values[e] for e in exts}
                if self.decode:
                    for e, data in row.items():
                        try:
                            row[e] = decode_member(e, data)
                        except (ValueError, UnicodeDecodeError) as exc:
                            why = f"sample {key!r}: column {e!r} does not decode: {exc}"
                            raise DataFormatError(why, path, number) from None
            except DataFormatError as exc:
                report_bad_record(exc, path, number)
                continue
            out[KEY].append(key)
            for e in exts:
                out[e].append(row[e])
            n += 1
        logger.debug("read %d samples from %s", n, path)
        return out, n

    def count_samples(self, path: str) -> int:
        """The number of distinct keys, from the tar headers only (data is skipped, not read, in a
        ``.tar`` that seeks; a compressed shard is decompressed)."""
        return len({key for _, key, _, _ in _members(path, data=False)})


def _drift(exts: Sequence[str], values: dict[str, Any]) -> str:
    missing = sorted(set(exts) - values.keys())
    unexpected = sorted(values.keys() - set(exts))
    parts = []
    if missing:
        parts.append(f"missing column(s) {missing}")
    if unexpected:
        parts.append(f"unexpected column(s) {unexpected}")
    return ", ".join(parts) + " (the file's first sample sets the columns)"


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    for _, key, group in _samples(path):
        record: dict[str, Any] = {KEY: key}
        for _, ext, content in group:
            record.setdefault(ext, content)
        return {k: type(v).__name__ for k, v in record.items()}, record
    return None


def _member_bytes(member: tarfile.TarInfo, content: bytes) -> bytes:
    """``member`` as tar bytes: its header (PAX, so long names survive), its data, the padding."""
    info = tarfile.TarInfo(member.name)
    info.size, info.mtime, info.mode = len(content), member.mtime, member.mode
    info.uid, info.gid, info.uname, info.gname = member.uid, member.gid, member.uname, member.gname
    pad = -len(content) % tarfile.BLOCKSIZE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + content + b"\0" * pad


class _SplitSamples(LineSource):
    """``split``'s framing: one sample a record, its members as tar bytes (headers, data, padding).

    A chunk is these records back to back: a tar without the end-of-archive blocks, which Python's
    ``tarfile`` and GNU tar read to the end of the file.
    """

    def records(self, path: str) -> Iterator[bytes]:
        seen: set[str] = set()
        for number, key, group in _samples(path):
            if key in seen:
                raise DataFormatError(f"sample {key!r}: its members are not consecutive in the tar", path, number)
            seen.add(key)
            yield b"".join(_member_bytes(member, content) for member, _, content in group)


FORMAT = Format(
    name="webdataset",
    suffixes=(".tar",),
    aliases=("wds", "tar"),
    reader=WebDatasetReader,
    first_record=_first_record,
    split_source=_SplitSamples,
)
