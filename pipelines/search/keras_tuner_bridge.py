"""The one module that relies on keras-tuner beyond its top-level API.

Everything else in kerasflow uses `keras_tuner` as documented: `kt.Tuner`,
the built-in tuners and oracles, `kt.engine.trial.TrialStatus`. What is
left is here, each piece checked by `tests/unit/test_keras_tuner_bridge.py`,
which fails loudly when a keras-tuner release changes it:

- the gRPC service of keras-tuner's distributed mode (`keras_tuner.src`
  only: there is no public name for it);
- an oracle with a wall-clock deadline, by overriding `populate_space`, the
  method keras-tuner documents for oracle subclasses, and that tries given
  starting points (each family's defaults, cheapest family first) before
  random ones, and draws no more trials of a family left out for want of
  time, by overriding `_random_values`, which every built-in oracle calls for
  a new random point (`models.portfolio`);
- the built-in tuners rebuilt around such an oracle: `Hyperband`,
  `RandomSearch` and `BayesianOptimization` are `kt.Tuner`s that build their
  own oracle in `__init__` (Hyperband also sets each trial's epochs and warm
  start), so a subclass that hands `kt.Tuner.__init__` another oracle keeps
  everything else;
- telling "too many consecutive failed trials" (a plain `RuntimeError`) from
  other errors, by the oracle's own record of how trials ended;
- the oracle's and the tuner's state files (`trial.json`, `oracle.json`,
  the tuner's) written whole, beside and renamed (`pipelines.registry.atomic_write`), by overriding the
  oracle's `save` and `_save_trial` and the tuner's `save`: keras-tuner writes them in place, and a retrain
  killed while it wrote a trial's left an empty `trial.json`, which the rerun's resume read as a
  JSONDecodeError.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import keras_tuner as kt
from keras_tuner.src import backend as kt_backend
from keras_tuner.src import protos
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute.oracle_chief import OracleServicer

from pipelines.registry import atomic_write

KT_STATUS = kt.engine.trial.TrialStatus
# Random draws an oracle makes for a trial of a family not left out before it gives up (and the search stops): with
# one family of F left, F * 10 draws all miss it with probability (1 - 1/F) ** (10 F) < e ** -10.
DRAWS_PER_FAMILY = 10
BUILTIN = {
    "hyperband": (kt.Hyperband, kt.oracles.HyperbandOracle),
    "bayesian": (kt.BayesianOptimization, kt.oracles.BayesianOptimizationOracle),
    "random": (kt.RandomSearch, kt.oracles.RandomSearchOracle),
}
# Members each built-in tuner adds to kt.Tuner; anything else would be lost by `tuner_taking_an_oracle`.
BUILTIN_TUNER_MEMBERS = {"hyperband": {"__init__", "run_trial", "_build_hypermodel"},
                         "bayesian": {"__init__"}, "random": {"__init__"}}


@functools.cache
def deadline_oracle(name: str) -> type:
    """The built-in oracle of tuner `name`, made to create no trial once `deadline` (time.time()) has passed."""
    base = BUILTIN[name][1]

    class DeadlineOracle(base):
        def __init__(self, *args, deadline: float, first: list[dict] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.deadline = deadline
            self.first = list(first or [])
            self.left_out: set[str] = set()  # families whose trials no longer fit in the time left

        def populate_space(self, trial_id):
            if time.time() >= self.deadline:
                return {"status": KT_STATUS.STOPPED, "values": None}
            result = super().populate_space(trial_id)
            values = result.get("values") or {}
            # A model-based proposal (Bayesian) of a family left out: a random trial of one still in. Hyperband's
            # values are drawn by `_random_values`, or carry on an earlier trial in its bracket.
            if values.get("family") in self.left_out and "tuner/bracket" not in values:
                values = self._random_values()
                return {"status": KT_STATUS.RUNNING if values else KT_STATUS.STOPPED, "values": values}
            return result

        def leave_out(self, family: str) -> None:
            """Draw no more trials of `family`, whose trials no longer fit in the time left; past the last family of
            the space, the search stops."""
            self.left_out.add(family)
            if set(space_families(self.hyperparameters)) <= self.left_out:
                self.deadline = time.time()

        def _random_values(self):
            """Each of `first` (e.g. {"family": "rocket"}, with defaults elsewhere) before random values; neither of
            a family left out."""
            tried = [t.hyperparameters.values for t in self.trials.values()]
            for fixed in self.first:
                if fixed.get("family") in self.left_out:
                    continue
                if not any(self._serves(fixed, values) for values in tried):
                    return default_values(self.hyperparameters, fixed)
            for _ in range(DRAWS_PER_FAMILY * max(1, len(space_families(self.hyperparameters)))):
                values = super()._random_values()
                if values is None or values.get("family") not in self.left_out:
                    return values
            return None

        def served_first(self) -> list[str]:
            """The ids of the trials that tried `first`: for each entry, the earliest trial that matches it."""
            served = []
            for fixed in self.first:
                matching = [i for i in sorted(self.trials) if self._serves(fixed, self.trials[i].hyperparameters.values)]
                served += matching[:1]
            return served

        def _serves(self, fixed: dict, values: dict) -> bool:
            wanted = default_values(self.hyperparameters, fixed)
            return all(values.get(k) == wanted[k] for k in fixed if k in wanted)

        def save(self):
            save_state(Path(self._get_oracle_fname()), self)

        def _save_trial(self, trial):
            save_state(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial)

    DeadlineOracle.__name__ = DeadlineOracle.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineOracle


def space_families(space: kt.HyperParameters) -> list:
    """The values of the space's `family` choice; none before a model registered it."""
    return next((list(hp.values) for hp in space.space if hp.name == "family"), [])


def default_values(space: kt.HyperParameters, fixed: dict) -> dict:
    """Values for every hyperparameter active under `fixed`: `fixed` where given and within the hyperparameter's
    range, else the default. A name of `fixed` the space does not hold yet (one the model registers only when
    built with some values, e.g. the width of a hidden layer) is passed on: the build takes it instead of the
    default."""
    hps = kt.HyperParameters()
    for hp in space.space:
        hps.merge([hp])
        if hps.is_active(hp):
            given = fixed.get(hp.name, hp.default)
            hps.values[hp.name] = given if admits(hp, given) else hp.default
    known = {hp.name for hp in space.space}
    return {**{k: v for k, v in fixed.items() if k not in known}, **hps.values}


def admits(hp, value) -> bool:
    """Whether `value` is one `hp` can take: one of a choice's values, within an int's or float's range."""
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return value in hp.values
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return isinstance(value, bool)
    if isinstance(hp, (kt.engine.hyperparameters.Int, kt.engine.hyperparameters.Float)):
        return hp.min_value <= value <= hp.max_value
    return True


@functools.cache
def tuner_taking_an_oracle(name: str) -> type:
    """The built-in tuner `name`, taking its oracle as an argument like `kt.Tuner` does."""
    base = BUILTIN[name][0]

    def __init__(self, oracle, hypermodel=None, **kwargs):
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        save_state(Path(self._get_tuner_fname()), self)

    return type(base.__name__, (base,), {"__init__": __init__, "save": save, "__module__": __name__,
                                         "__doc__": f"`kt.{base.__name__}` with the oracle given."})


def save_state(path: Path, stateful) -> None:
    """What keras-tuner's `Stateful.save(path)` writes (the JSON of `get_state()`), written whole."""
    atomic_write(path, json.dumps(stateful.get_state()))


def add_oracle_service(server, oracle) -> None:
    """Serve `oracle` on a grpc `server` the way keras-tuner's chief does, for its workers."""
    protos.get_service_grpc().add_OracleServicer_to_server(OracleServicer(oracle), server)


def save_checkpoint(tuner, trial_id: str, model) -> None:
    """Keep `model` as the trial's best, where `load_model`, `get_best_models` and hyperband's next round read it:
    its weights and (under multi-backend Keras) its build config, as `kt.Tuner` does after its own fit."""
    model.save_weights(tuner._get_checkpoint_fname(trial_id))
    if kt_backend.config.multi_backend():
        kt_utils.save_json(tuner._get_build_config_fname(trial_id), model.get_build_config())


def copy_checkpoint(tuner, source_id: str, target_id: str) -> None:
    """Keep trial `source_id`'s best model (`save_checkpoint`'s files) as trial `target_id`'s too."""
    names = [tuner._get_checkpoint_fname]
    if kt_backend.config.multi_backend():
        names.append(tuner._get_build_config_fname)
    for name in names:
        target = Path(name(target_id))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(name(source_id), target)


def stopped_for_failures(oracle) -> bool:
    """True when the last `max_consecutive_failed_trials` trials the oracle ended all failed.

    keras-tuner then ends the search with a bare `RuntimeError`; this tells it
    apart from any other `RuntimeError` without reading its message.
    """
    limit = getattr(oracle, "max_consecutive_failed_trials", None)
    ended = getattr(oracle, "end_order", None)
    if not limit or not ended or len(ended) < limit:
        return False
    return all(oracle.trials[trial_id].status == KT_STATUS.FAILED for trial_id in ended[-limit:])
