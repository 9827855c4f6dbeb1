"""The package version and distribution name, in a module of its own so that any module can import
them without a cycle.

The distribution (what ``pip install`` takes) is ``pyloader-chunks``: the name ``pyloader`` on the
package index belongs to an unrelated project. The import packages stay ``pyloader_core``,
``pyloader_torch`` and ``pyloader_tf``.

Example::

    from pyloader_core.version import __version__, DIST_NAME, install_hint
    __version__             # '0.1.0'
    DIST_NAME               # 'pyloader-chunks'
    install_hint("remote")  # "pip install 'pyloader-chunks[remote]'"
"""

__all__ = ["DIST_NAME", "__version__", "install_hint"]

__version__ = "0.1.0"

#: The distribution name on the package index (``[metadata] name`` in setup.cfg).
DIST_NAME = "pyloader-chunks"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs PyLoader, with ``extra`` (e.g. ``"remote"``) when given.

    The requirement is quoted so that the command also works in shells that expand ``[...]`` (zsh).
    """
    if extra:
        return f"pip install '{DIST_NAME}[{extra}]'"
    return f"pip install {DIST_NAME}"
