"""The worker runtime: the epoch's units run by threads or processes behind one loop, reassembled in order.

The path of the data: :mod:`.engine` submits :class:`~.worker_loop.Task` s (a plan unit tagged with
its pass) to a pool from :mod:`.pools`; every worker runs :func:`~.worker_loop.worker_loop`, which
calls :func:`~.execute.run_unit`; process workers start as :mod:`.launch` says and hand results back
over a :mod:`.channel` in anonymous shared memory (:mod:`.transport`); :mod:`.stall` times every
wait. The engine reorders results by their key, drops other passes' results, batches and collates.
"""
