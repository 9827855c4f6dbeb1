"""Building and writing ``index.json`` (the write side; :mod:`pyloader_core.index` reads it).

Example::

    files = list_files("data/")
    write_index("data/", build_index(files, "jsonl", "data/"))
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from pyloader_core import storage
from pyloader_core.errors import ConfigError
from pyloader_core.formats import FORMATS, detect_format, format_of_reader, get_format
from pyloader_core.index import INDEX_NAME, ChunkEntry, Index
from pyloader_core.reader import DataReader, count_or_read
from pyloader_core.storage.checks import unverified
from pyloader_core.storage.paths import common_dir, relative_name

__all__ = ["build_index", "write_index"]

logger = logging.getLogger(__name__)


def build_index(
    files: Iterable[str],
    reader_or_format: DataReader | str | None = None,
    root: str | None = None,
) -> dict[str, Any]:
    """The index (a JSON-ready dict) of ``files``: each one's samples, bytes, SHA-256 and format.

    Args:
        files: the chunk files (local paths or URLs), all under ``root``.
        reader_or_format: the reader that counts samples, or a format name; ``None`` tells each
            file's format from its name (:func:`detect_format`).
        root: the directory the index will live in (default: the files' common directory).

    Raises:
        ConfigError: a file is not under ``root``, or its format cannot be told from its name.

    Example::

        files = list_files("data/")
        write_index("data/", build_index(files, "jsonl", "data/"))
    """
    files = list(files)
    if root is None:
        root = common_dir(files) if files else os.getcwd()
    with unverified():  # the files may differ from an older index: that is why it is rebuilt
        return _build(files, reader_or_format, root)


def _build(files: list[str], reader_or_format: DataReader | str | None, root: str) -> dict[str, Any]:
    readers: dict[str, DataReader] = {}
    chunks: dict[str, ChunkEntry] = {}
    for path in files:
        name = relative_name(path, root)
        if name is None:
            raise ConfigError(f"{path} is not under the index's directory {root}")
        if isinstance(reader_or_format, DataReader):
            reader, fmt = reader_or_format, format_of_reader(reader_or_format)
        else:
            fmt = get_format(reader_or_format).name if isinstance(reader_or_format, str) else detect_format(path)
            if fmt is None:
                raise ConfigError(f"cannot tell the format of {path} from its name; give one of {', '.join(FORMATS)}")
            if fmt not in readers:
                readers[fmt] = FORMATS[fmt].reader()
            reader = readers[fmt]
        samples = count_or_read(reader, path)
        size = storage.file_size(path)
        digest = storage.file_sha256(path)
        chunks[name] = ChunkEntry(name, samples, size, digest, fmt)
        logger.debug("indexed %s: %d samples, %d bytes", name, samples, size)
    return Index(str(root), chunks).to_dict()


def write_index(root: str | os.PathLike[str], index: dict[str, Any] | Index) -> str:
    """Write ``index`` as ``root/index.json`` (atomically for local directories); returns its path.

    Example::

        write_index("data/", build_index(list_files("data/"), None, "data/"))
    """
    root = os.fspath(root)
    data = index.to_dict() if isinstance(index, Index) else index
    Index.from_dict(root, data)  # refuse to write what could not be read back
    text = _dumps(data)
    path = storage.join(root, INDEX_NAME)
    storage.write_bytes(path, text.encode("utf-8"))
    logger.info("wrote %s (%d chunks)", path, len(data["chunks"]))
    return path


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one chunk per line: readable, and diffs stay small."""
    head = {k: v for k, v in data.items() if k != "chunks"}
    lines = [json.dumps(c, separators=(", ", ": ")) for c in data["chunks"]]
    body = ",\n  ".join(lines)
    head_text = json.dumps(head, indent=1)[:-2]  # without the closing "\n}"
    return head_text + ',\n "chunks": [\n  ' + body + "\n ]\n}\n" if lines else head_text + ',\n "chunks": []\n}\n'


