"""PyLoader's tools: ``split``, index building, and the ``pyloader`` command line.

Nothing in :mod:`pyloader_core.runtime`, :mod:`pyloader_core.formats` or :mod:`pyloader_core.storage`
imports them.
"""
