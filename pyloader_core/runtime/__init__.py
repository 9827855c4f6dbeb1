"""The runtime: plan an epoch, run its windows in workers, reassemble batches in order, checkpoint positions.

The path of the data, one concept per module:

- :mod:`.plan` (pure: seed, epoch, world shape, counts -> work units), :mod:`.counts` (one path to
  every file's sample count), :mod:`.windows` (window arithmetic);
- :mod:`.loader` (the user's :class:`~pyloader_core.DataLoader`: passes and epochs), :mod:`.epochs`
  (the epoch cursor and resume envelope both adapters use);
- :mod:`.engine` submits :class:`~.worker_loop.Task` s to a pool (:mod:`.pools`: :mod:`.pool_base`,
  :mod:`.thread_pool`, :mod:`.process_pool`); every worker runs :func:`~.worker_loop.worker_loop`,
  which calls :func:`~.execute.run_window`; process workers start as :mod:`.launch` says and hand
  results back over a :mod:`.channel` in anonymous shared memory (:mod:`.transport`), buffers that
  go round (:mod:`.recycle`); numeric lists become arrays in the worker (:mod:`.arrays`);
  :mod:`.stall` times every wait. The engine reorders results by key, drops other passes' results,
  checks the schema (:mod:`.schema`), batches and collates;
- :mod:`.checkpoint` / :mod:`.position` / :mod:`.fingerprint` (states: a position plus what shapes the
  stream), :mod:`.elastic`, :mod:`.elastic_resume`, :mod:`.elastic_stream` (resuming at another world shape);
- :mod:`.memory`, :mod:`.autotune`, :mod:`.keeper`, :mod:`.stats`, :mod:`.progress`.
"""
