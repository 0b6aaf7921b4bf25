"""Fine-tune step: rebuild the best architecture and train it longer on train+val.

Validation data was spent choosing the architecture, so the final model
learns from it too; early stopping and learning-rate reduction watch the
training loss, and the test split stays untouched for evaluation. An
ensemble's members are trained one by one, then averaged into one model; a
closed-form family (MiniRocket) solves its head instead of running epochs.
A model of heads on features fitted without labels (MiniRocket's, a frozen
base's) is not refitted under k-fold: its trials solved those heads on every
row already (`fitted_by_search`).

Under k-fold selection a member the search trained as fold towers
(`pipelines.search.towers`) is not refitted: its trial's fold models, each
stopped at its best epoch on its own held-out fold, ship averaged, a bag
(AutoGluon's k-fold bagging). What ships is then what the out-of-fold score
measured. A refit on every row has no held-out rows to stop on: it watches
the training loss, trains past the best epoch, and its seed moves the test
score by one to three rows. Measured on three bench sets (test accuracy of
the search's chosen architecture, three seeds each):

| data (train+val rows) | architecture | refit on train+val | bag of its 5 fold models |
|---|---|---|---|
| breast_cancer (455) | MLP 2x32 | 0.9708 (0.965-0.974) | 0.9825 (all three) |
| wine (142) | MLP 2x64 | 0.9630 (0.944-0.972) | 0.9722 (all three) |
| digits (1,437) | small CNN | 0.9842 (0.978-0.994) | 0.9944 (0.992-0.997) |

Under a mobile budget (a bag is k models in one) and for members the search
trained otherwise, members are refitted as above.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from models import (
    ENSEMBLE,
    KerasflowHyperModel,
    average,
    closed_form,
    features_fit_without_labels,
    member_hyperparameters,
)
from models.ensemble import member_models
from models.saving import load_model
from models.training_state import build_training_state
from models.trees import ROUNDS_FITTED, boosts
from pipelines.budget import StopAtDeadline
from pipelines.devices import DeviceSetup, fit_inputs, float32_policy, strategy_scope
from pipelines.imbalance import class_weights
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.search.seeding import seed_trial
from pipelines.search.towers import load_bag


# A fine-tune is not started only when it is expected to need this many times its share of the time (`refit_overrun`):
# the estimate is rough (a trial's seconds hold its scoring and model building too), and a refit that would have
# finished is worth more than the time an unfinished or late one costs. AER/HMDA (1,904 rows, k-fold): 5 s expected
# against a 4-second share; Default: 36 s against 4; carData's MplsStops (41,536 rows): 239 s against 9.
REFIT_STOP_MARGIN = 2.0
# A refit solved in one go (no epochs, no boosting rounds that could stop unfinished) and expected to take at most
# this many seconds starts even where the finish's estimate asked for the fine-tune's time (`cheap_refit`): on small
# data the refit on every row is worth more than its seconds, the search's model being its last fold's (four fifths of
# the rows). ArrowHead (36 series) shipped three MiniRocket models so at 0.7829 in a 1-minute run where a refit of
# them took about a second and scored 0.8571; MiniRocket's trials now keep a head solved on every row
# (`fitted_by_search`), a linear or kernel trial its last fold's fit.
CHEAP_REFIT_SECONDS = 5.0


@dataclass
class FineTuneResult:
    """A finished training of one architecture.

    Attributes:
        model_path: the saved float32 Keras model.
        history: Keras history (loss, accuracy, learning rate, and val_* when validated) per epoch.
        epochs: epochs trained; seconds: wall time of the training.
        stopped_at_deadline: the run's budget ended the training (the best weights so far were kept).
        search_model_kept: `model_path` holds the search's chosen model instead (`keep_search_model`).
        fewest_epochs: the fewest epochs any member trained by epochs ran (an ensemble's members share the
            time; the curves are the first one's); None when every member is closed-form.
        bagged: the members that ship as a bag of their fold models (0: every member was trained on train+val).
        unfinished_solves: the members solved without epochs that the deadline stopped (boosting, before all its
            rounds).
        not_started: nothing was trained: the refit was expected to overrun or stop unfinished (`refit_overrun`),
            or the search had fitted the model on every row already (`fitted_by_search`).
        fitted_by_search: the search's model ships as the refit would have made it (`fitted_by_search`).
    """

    model_path: Path
    history: dict[str, list[float]]
    epochs: int
    seconds: float
    stopped_at_deadline: bool = False
    search_model_kept: bool = False
    fewest_epochs: int | None = None
    bagged: int = 0
    unfinished_solves: int = 0
    not_started: bool = False
    fitted_by_search: bool = False

    def cut_short(self, search_epochs: int) -> bool:
        """The deadline stopped this training before the epochs the search's chosen trials needed to their best:
        for an ensemble, before any one member trained by epochs reached them (a member trained for one epoch
        drags the average down however well the others trained), or before a member solved without epochs was
        whole."""
        return self.unfinished_solves > 0 or (self.stopped_at_deadline and self.least_epochs < search_epochs)

    @property
    def least_epochs(self) -> int:
        """The epochs of the member trained by epochs that ran fewest (`epochs` for one model)."""
        return self.epochs if self.fewest_epochs is None else self.fewest_epochs


def keep_search_model(tuned: FineTuneResult, search_model: Path) -> FineTuneResult:
    """Put the search's best model (trained on the training split, scored on held-out rows) in place of a
    fine-tune the deadline cut short: an undertrained model on more rows is worse than a converged one on fewer."""
    shutil.copyfile(search_model, tuned.model_path)
    return replace(tuned, search_model_kept=True)


def refit_overrun(members: list[dict], expected: list[float], seconds_left: float) -> str | None:
    """Why a fine-tune of `members` (their hyperparameter values), each expected to take `expected` seconds
    (`SearchResult.refit_seconds`), should not start with `seconds_left` to the deadline; None if it should.

    Two ways a refit costs more than it brings, each only when clear (`REFIT_STOP_MARGIN`):
    - its solves, which cannot stop at the deadline (a kernel's, a linear's, a forest's), would run far past it:
      carData's MplsStops (41,536 rows, 1 minute, trials on 5,296 of them) refitted a kernel, a forest, a dense and
      a linear member for 107 s of a 12-second share;
    - a boosted member would stop unfinished at its share of the time (`fine_tune` gives each member its share, and
      the members before it overrun theirs when their solve cannot stop), and a stopped boosted member discards the
      whole refit after its solves have run: ISLR's Default (8,000 rows) spent 24 s of a 1-minute run refitting a
      kernel, a linear and two tree members that did not ship.
    """
    total = sum(expected)
    expected_to = f"refitting it on train+val was expected to take {total:.0f} s"
    deadline = f"the run's deadline ({max(seconds_left, 0):.0f} s away)"
    if total > REFIT_STOP_MARGIN * seconds_left:
        return f"{expected_to}, past {deadline}, where its solves cannot stop"
    spent = 0.0
    for i, (values, seconds) in enumerate(zip(members, expected)):
        spent += seconds
        if boosts(values) and spent > REFIT_STOP_MARGIN * seconds_left * (i + 1) / len(members):
            return f"{expected_to}, and its boosting would have stopped unfinished at {deadline}"
    return None


def cheap_refit(members: list[dict], expected: list[float], bags: list[Path | None]) -> bool:
    """Whether the fine-tune of `members` (each's refit expected to take `expected` seconds, or shipping as its bag
    of fold models where `bags` names one) is cheap enough to start whatever the finish asks (`CHEAP_REFIT_SECONDS`):
    each member is loaded as its bag or solved in one go without boosting, all of them within those seconds."""
    one_go = all(bag is not None or (closed_form(values) and not boosts(values))
                 for values, bag in zip(members, bags))
    return one_go and sum(expected) <= CHEAP_REFIT_SECONDS


def fitted_by_search(members: list[dict], cross_validated: bool) -> bool:
    """Whether the search's model of `members` is the one a refit on train+val would make: under k-fold, a head on
    features fitted without labels (MiniRocket's, a frozen base's) is solved on every row once its folds are scored
    (`pipelines.search.tuner`), so an ensemble of them is refitted already. The refit took OSULeaf's 1-minute run
    5 s and ACSF1's 11-14 s, its evaluation on the test split 7 s more."""
    return cross_validated and all(features_fit_without_labels(values) for values in members)


def search_model_instead(search_model: Path, output_path: Path, fitted: bool = False) -> FineTuneResult:
    """The fine-tune's result when it does not start (`refit_overrun`), or need not (`fitted`: `fitted_by_search`):
    the search's model in its place."""
    return keep_search_model(FineTuneResult(output_path, {"loss": [], "accuracy": []}, 0, 0.0, not_started=True,
                                            fitted_by_search=fitted), search_model)


def fine_tune(
    inputs: ModelInputs,
    prep: Preprocessing,
    hyperparameters: dict,
    output_path: Path,
    *,
    max_epochs: int,
    batch_size: int,
    seed: int,
    class_weight: str = "auto",
    devices: DeviceSetup | None = None,
    deadline: float | None = None,
    bags: list[Path | None] | None = None,
) -> FineTuneResult:
    """Train the chosen architecture (or each member of an ensemble) from scratch on train+val; save it to
    `output_path` (always float32). With a `deadline` (time.time()), training stops there after the running
    batch, with the best weights so far; an ensemble's members share the time equally. `bags` (one per member, from
    `SearchResult.member_bags`): the trial folder whose bag of fold models ships as that member, or None. Each
    member trained draws from `seed` and its own values (`pipelines.search.seeding`)."""
    x = np.concatenate([inputs.x_train, inputs.x_val])
    y = np.concatenate([inputs.y_train, inputs.y_val])
    started = time.monotonic()
    members = member_hyperparameters(hyperparameters)
    now = time.time()
    bags = bags or [None] * len(members)
    trained = [_train_one(prep, values, x, y, max_epochs, batch_size, seed, class_weight, devices,
                          None if deadline is None else now + (deadline - now) * (i + 1) / len(members), bag)
               for i, (values, bag) in enumerate(zip(members, bags))]
    models = [model for model, _, _, _ in trained]
    model = models[0] if len(models) == 1 else average(models)
    # the values each member was built with: a data-fitted size (kernel landmarks) follows these rows
    built = [values for _, _, _, values in trained]
    as_float32(model, prep, built[0] if len(built) == 1 else {"family": ENSEMBLE, "members": built}).save(output_path)
    # An ensemble's curves are those of its first member trained by epochs (a closed-form member has one point).
    curves = next((c for _, c, _, _ in trained if len(c["loss"]) > 1), trained[0][1])
    by_epochs = [len(c["loss"]) for (_, c, _, _), values in zip(trained, members) if not closed_form(values)]
    return FineTuneResult(output_path, curves, len(curves["loss"]), time.monotonic() - started,
                          stopped_at_deadline=any(stopped for _, _, stopped, _ in trained),
                          unfinished_solves=sum(stopped and closed_form(values)
                                                for (_, _, stopped, _), values in zip(trained, members)),
                          fewest_epochs=min(by_epochs) if by_epochs else None,
                          bagged=sum(values.get("family") == ENSEMBLE for values in built))


def _train_one(prep: Preprocessing, values: dict, x: np.ndarray, y: np.ndarray, max_epochs: int, batch_size: int,
               seed: int, class_weight: str, devices: DeviceSetup | None,
               deadline: float | None, bag: Path | None = None) -> tuple[keras.Model, dict, bool, dict]:
    hp = _hyperparameters(values)
    hypermodel = KerasflowHyperModel(prep, [values["family"]], jit_compile=devices.jit_compile if devices else "auto",
                                     x_fit=x)
    if bag is not None:  # the search's fold models, as it scored them: nothing to train
        with strategy_scope(devices):
            model, curves = load_bag(bag, lambda: hypermodel.build(hp))
        return model, curves, False, {"family": ENSEMBLE, "members": [dict(hp.values)] * len(member_models(model))}
    seed_trial(seed, values)  # a member trains alike whatever members come before it (`pipelines.search.seeding`)
    with strategy_scope(devices):
        model = hypermodel.build(hp)
    weights = class_weights(y, class_weight)
    stop = StopAtDeadline(deadline if deadline is not None else float("inf"), every_batch=True)
    if closed_form(values):  # boosting stops adding rounds at the deadline (`models.trees.fit_trees`)
        metrics = hypermodel.fit(hp, model, x, y, class_weight=weights, callbacks=[stop])
        cut = ROUNDS_FITTED in metrics and metrics[ROUNDS_FITTED] < hp.get("trees_count")
        return model, {"loss": [metrics["loss"]], "accuracy": [metrics["accuracy"]]}, cut, dict(hp.values)
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_lr=1e-6),
        # restores the best epoch's weights at the end of training, however it ends (the deadline too)
        keras.callbacks.EarlyStopping(monitor="loss", patience=6, restore_best_weights=True),
        stop,
    ]
    history = hypermodel.fit(hp, model, **fit_inputs(x, y, batch_size, devices, shuffle=True, seed=seed),
                             epochs=max_epochs, callbacks=callbacks, class_weight=weights, verbose=0)
    return model, {k: [float(v) for v in values] for k, values in history.history.items()}, stop.stopped, \
        dict(hp.values)


def build_from_hyperparameters(prep: Preprocessing, values: dict, jit_compile: bool | str = "auto") -> keras.Model:
    """An untrained model of `values` (an ensemble's: its members averaged); data-fitted layers are left empty."""
    if values.get("family") == ENSEMBLE:
        return average([build_from_hyperparameters(prep, member, jit_compile) for member in values["members"]])
    return KerasflowHyperModel(prep, [values["family"]], jit_compile=jit_compile).build(_hyperparameters(values))


def _hyperparameters(values: dict) -> kt.HyperParameters:
    """keras-tuner takes values already in `hp.values` over each hyperparameter's default."""
    hp = kt.HyperParameters()
    hp.values.update(values)
    return hp


def as_float32(model: keras.Model, prep: Preprocessing, values: dict) -> keras.Model:
    """`model` itself if it computes in float32; else the same architecture in float32 with its weights.

    Mixed precision keeps float32 master weights, so the copy is exact; the
    saved model then exports to TFLite without float16 casts in the graph.
    """
    if keras.mixed_precision.global_policy().name == "float32":
        return model
    with float32_policy():
        clean = build_from_hyperparameters(prep, values)
    clean.set_weights(model.get_weights())
    return clean


def save_history(result: FineTuneResult, path: Path) -> Path:
    path.write_text(json.dumps(result.history))
    return path


def warm_start(
    champion_path: Path,
    inputs: ModelInputs,
    output_path: Path,
    *,
    learning_rate: float,
    replay: tuple[np.ndarray, np.ndarray] | None,
    max_epochs: int,
    batch_size: int,
    seed: int,
) -> FineTuneResult:
    """Continue training the champion on new data (plus replayed earlier samples) at a lower learning rate.

    Unlike `fine_tune`, the new validation split stays held out: it decides
    when to stop, and the weights of the best epoch are kept.
    """
    keras.utils.set_random_seed(seed)
    model = load_model(champion_path)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = inputs.x_train, inputs.y_train
    if replay is not None and len(replay[0]):
        x, y = np.concatenate([x, replay[0]]), np.concatenate([y, replay[1]])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    started = time.monotonic()
    build_training_state(model, x, y)
    history = model.fit(x, y, validation_data=(inputs.x_val, inputs.y_val), epochs=max_epochs, batch_size=batch_size,
                        callbacks=[stop], shuffle=True, verbose=0)
    model.save(output_path)
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}
    return FineTuneResult(output_path, curves, len(curves["loss"]), time.monotonic() - started)
