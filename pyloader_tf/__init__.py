"""PyLoader for TensorFlow: a :class:`~pyloader_core.DataLoader` as a ``tf.data.Dataset``.

Each new iteration of the dataset (each ``model.fit`` epoch) is the loader's next epoch, reshuffled
deterministically from ``(random_seed, epoch)``; abandoning an iterator stops the loader's workers.
``make_distributed_dataset_fn`` shards by ``tf.distribute.InputContext``; ``EpochSyncCallback`` pins
fit epoch ``e`` to loader epoch ``e`` (resuming, eager distribute strategies).

Example::

    import tensorflow as tf
    from pyloader_core import JsonLineDataReader, TextDataset
    from pyloader_tf import TFCollator, make_tf_dataset

    ds = make_tf_dataset(JsonLineDataReader(batch_size=64), TextDataset("vocab.txt", max_seq_len=128),
                         TFCollator(), "data/", shuffle=True, num_workers=2, worker_type="process")
    ds = ds.map(lambda b: (b["input_ids"], b["label"])).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=3)
"""

from pyloader_tf.callback import EpochSyncCallback
from pyloader_tf.checkpoint import TFLoaderState
from pyloader_tf.collator import TFCollator
from pyloader_tf.dataset import infer_loader_signature, make_tf_dataset, peek_batch
from pyloader_tf.source import TFEpochSource, wait_idle
from pyloader_tf.distribute import DistributedDatasetFn, make_distributed_dataset_fn
from pyloader_tf.signature import SignatureMismatchError, check_batch, infer_signature, to_tf_dtype

__all__ = [
    "DistributedDatasetFn",
    "EpochSyncCallback",
    "SignatureMismatchError",
    "TFCollator",
    "TFEpochSource",
    "TFLoaderState",
    "check_batch",
    "infer_loader_signature",
    "infer_signature",
    "make_distributed_dataset_fn",
    "make_tf_dataset",
    "peek_batch",
    "to_tf_dtype",
    "wait_idle",
]
