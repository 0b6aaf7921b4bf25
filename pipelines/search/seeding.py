"""Each trial's random state: drawn from the run's seed and the trial's own values, not from the trials before it.

Seeding Keras once at the start of a search (`keras.utils.set_random_seed`)
leaves a trial's initial weights, dropout masks, augmentation and batch order
to whatever the trials before it drew from the same generators. A trial's
score then depends on its place in the search: a resumed search trains the
trial it was interrupted in from another state than the first attempt did,
and two runs that differ in one offered family (`--pretrained` adds the
`transfer` trial first) train even the trials they share differently, so
their difference is mostly the draw. Seeding every trial from a hash of the
run's seed and its hyperparameter values (keras-tuner's `tuner/` bookkeeping
left out, so hyperband's rounds of one configuration draw alike) makes a
trial's model a function of what it is and of the run's seed alone. The
fine-tune seeds each member it trains the same way.

The random draws kerasflow makes itself (folds, kernel ridge's landmarks,
MiniRocket's biases, the forests' rows) take their seeds explicitly and are
not touched; keras-tuner's oracle draws from its own seeded state.
"""

from __future__ import annotations

import hashlib
import json

import keras

from pipelines.search.ledger import own_values

SEED_BYTES = 4
SEED_MODULUS = 2**31 - 1  # TensorFlow's and NumPy's seeds are 32-bit


def trial_seed(run_seed: int, values: dict) -> int:
    """The seed of the trial (or fine-tuned member) with hyperparameter `values` in a run seeded `run_seed`."""
    text = json.dumps([run_seed, own_values(values)], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:SEED_BYTES], "little") % SEED_MODULUS


def seed_trial(run_seed: int, values: dict) -> None:
    """Seed Python's, NumPy's and the backend's generators for one trial (`trial_seed`)."""
    keras.utils.set_random_seed(trial_seed(run_seed, values))
