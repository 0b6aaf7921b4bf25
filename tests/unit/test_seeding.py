"""A trial's seed: the run's seed and the trial's own values (`pipelines.search.seeding`)."""

from pipelines.search.seeding import SEED_MODULUS, trial_seed


def test_a_trials_seed_follows_its_values_and_the_runs_seed_only():
    values = {"family": "dense", "dense_layers": 1, "learning_rate": 0.001}
    seed = trial_seed(0, values)
    assert 0 <= seed < SEED_MODULUS
    assert trial_seed(0, dict(reversed(values.items()))) == seed, "the values' order does not matter"
    assert trial_seed(0, {**values, "tuner/epochs": 9, "tuner/trial_id": "0003"}) == seed, \
        "hyperband's rounds of one configuration draw alike"
    assert trial_seed(1, values) != seed
    assert trial_seed(0, {**values, "learning_rate": 0.01}) != seed
