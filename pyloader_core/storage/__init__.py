"""Storage: paths and listing, byte I/O through fsspec, compression, read checks and the local cache.

Nothing here imports the index, the formats, the runtime or the tools.

Example::

    from pyloader_core import storage

    storage.configure_cache("/tmp/pyloader-cache", max_bytes=20 * 2**30)
    with storage.open_binary_any("s3://bucket/data/part-00000.jsonl") as f:
        head = f.read(100)
"""

from pyloader_core.storage.access import (
    exists,
    file_sha256,
    file_size,
    materialize,
    open_binary_any,
    read_bytes,
    write_bytes,
)
from pyloader_core.storage.cache import (
    CACHE_BYTES_ENV,
    CACHE_DIR_ENV,
    DEFAULT_CACHE_BYTES,
    cache_settings,
    cached_path,
    configure_cache,
)
from pyloader_core.storage.checks import VERIFY_ENV, IncompleteReadError, unverified
from pyloader_core.storage.fs import storage_options_for, url_to_fs, use_storage_options
from pyloader_core.storage.listing import check_process_readable, list_files
from pyloader_core.storage.paths import (
    INDEX_NAME,
    RESERVED_NAMES,
    dirname,
    is_data_file_name,
    is_http,
    is_url,
    join,
    relative_name,
)

__all__ = [
    "CACHE_BYTES_ENV",
    "CACHE_DIR_ENV",
    "DEFAULT_CACHE_BYTES",
    "INDEX_NAME",
    "IncompleteReadError",
    "RESERVED_NAMES",
    "VERIFY_ENV",
    "cache_settings",
    "cached_path",
    "check_process_readable",
    "configure_cache",
    "dirname",
    "exists",
    "file_sha256",
    "file_size",
    "is_data_file_name",
    "is_http",
    "is_url",
    "join",
    "list_files",
    "materialize",
    "open_binary_any",
    "read_bytes",
    "relative_name",
    "storage_options_for",
    "unverified",
    "url_to_fs",
    "use_storage_options",
    "write_bytes",
]
