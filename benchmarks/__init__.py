"""Benchmarks of PyLoader against its peers; run ``python -m benchmarks.run`` (see ``benchmarks/run.py``)."""
