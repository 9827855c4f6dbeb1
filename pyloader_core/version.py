"""The package version, in a module of its own so that any module can import it without a cycle.

Example::

    from pyloader_core.version import __version__   # '0.1.0'
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
