"""Release the traced training graphs TensorFlow's gradient registry would keep for the life of the process.

Keras' TensorFlow optimizer sums each step's gradients over replicas
(`tf.distribute.get_replica_context().all_reduce`, the default strategy
included), and that all-reduce is a `tf.custom_gradient`. Traced inside a
`tf.function` (every `fit`'s train step), a custom gradient registers its
gradient function in TensorFlow's global gradient registry under a new name,
`CustomGradient-<n>`, and nothing removes it; the function's closure holds the
step's tensors, and through them the whole traced graph (TensorFlow #97697,
#27492; keras' `clear_session()` does not touch it: tf-keras #898). In one
process every trained model's train step stayed alive: on wine, about 4,700
graph operations and 48,000 Python objects a run, and every `gc.collect()` walks
them (keras-tuner collects before it builds each trial's model), so runs in one
process, and trials late in a long search, grew slower.

`released_gradients()` removes, when its block ends, the custom gradients
registered while it ran. A registered gradient is needed only while a graph
that uses it is being differentiated, which happens while the train step is
traced, inside the block. TensorFlow's own registry has no removal method; its
`Registry` keeps its entries in `_registry`, which is what is read here (as
tf-keras #898 does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"  # the names `tf.custom_gradient` registers in graph mode


def _entries() -> dict:
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry


def custom_gradients() -> set[str]:
    """The names of the custom gradients TensorFlow's registry holds now."""
    return {name for name in _entries() if name.startswith(CUSTOM_GRADIENT_PREFIX)}


@contextlib.contextmanager
def released_gradients() -> Iterator[None]:
    """Within the block, train as usual; at its end, drop the custom gradients registered during it (and with them
    the traced graphs they hold). One training at a time per process: keras-tuner and Keras' `clear_session()` assume
    it already."""
    before = custom_gradients()
    try:
        yield
    finally:
        entries = _entries()
        for name in custom_gradients() - before:
            entries.pop(name, None)
