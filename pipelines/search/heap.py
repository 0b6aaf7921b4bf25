"""Keep the garbage collector's walks to the objects a run's training creates.

keras-tuner builds each trial's model after `keras.backend.clear_session()`
and `gc.collect()` (`Tuner._try_build`), and rebuilding a chosen trial for the
ensemble does the same: two full collections a model. A full collection walks
every object the process tracks: TensorFlow's, Keras', Prefect's and
great-expectations' modules and what the run has loaded before the search.
On ISLR's Default table (8,000 training rows, 2 cores) a collection took
0.62 s, 34 of them 21 s of a 1-minute run (its search: 10 trials in 50 s);
within `frozen_heap()`, 41 collections took 0.9 s (12 trials in 38 s, the
run 105 -> 89 s wall).

`frozen_heap()` (around everything after validation: `pipelines.train`)
collects once, then moves every object tracked so far to the permanent
generation (`gc.freeze()`, Python's documented way to keep a
long-lived heap out of later collections) until its block ends. Collections
within the block walk only what was made since: the trials' models, graphs
and arrays, whose reference cycles they still free. Garbage among the frozen
objects waits for the block's end (most objects are freed by their reference
counts, which freezing does not touch).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block, the garbage collector walks only objects created in it (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
