"""The budgeted tuner: keras-tuner over kerasflow's space, a deadline, a mobile-budget gate and a trial ledger.

The tuner's state lives in the search folder, so building it again on the
same folder resumes the search. A trial that fails (NaN loss, out of memory,
a build error) is recorded with its message and the search goes on.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
from sklearn.metrics import f1_score

from models import (
    KerasflowHyperModel,
    closed_form,
    features_fit_without_labels,
    first_trials,
    trained_by_epochs,
    trial_class_weight,
)
from models.inference import head_outputs, layer_inputs, model_outputs
from models.rocket import fit_ridge_head
from models.transfer import TransferBase
from models.trees import ROUNDS_FITTED
from pipelines.budget import FeatureTimes, StopAtDeadline
from pipelines.config import SearchOptions
from pipelines.devices import DeviceSetup, distribution_strategy, fit_inputs, validation_inputs
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.imbalance import balanced_first, class_weights
from pipelines.search.keras_tuner_bridge import (
    copy_checkpoint,
    deadline_oracle,
    save_checkpoint,
    stopped_for_failures,
    tuner_taking_an_oracle,
)
from pipelines.search.fidelity import (Fidelity, converging, converging_towers, fidelity_for,
                                      hyperband_schedule)
from pipelines.search.gradients import released_gradients
from pipelines.search.ledger import COPIED_FROM, ROUNDS_ASKED, TrialLedger
from pipelines.search.records import TrialHook
from pipelines.search.seeding import seed_trial
from pipelines.search.selection import CrossValidation, load_heldout, save_heldout, scores
from pipelines.search.subsample import Subsampling, validation_rows
from pipelines.search.towers import fit_towers, save_bag, towers_pay

MAX_CONSECUTIVE_FAILURES = 5
# The score of a trial left untrained for want of time: below any real score, and not a failure (keras-tuner
# ends a search after MAX_CONSECUTIVE_FAILURES failed trials in a row, and a run of these near the deadline
# must not end it while the families that stop at the deadline can still use the time).
NOT_STARTED_SCORE = -1e6
HYPERBAND_ITERATIONS = 1000
FOOTPRINT_SAMPLES = 32


def searching_tuner(prep: Preprocessing, families: list[str], directory: Path, options: SearchOptions,
                    deadline: float, x_train: np.ndarray, on_trial_end: TrialHook | None = None,
                    devices: DeviceSetup | None = None, worker: str | None = None, base: TransferBase | None = None):
    """The budgeted tuner over `directory`; a `worker` keeps its timings and footprints in files of its own;
    `base`: the pretrained base of the `transfer` family. The trials' fidelity follows the training set's size
    (`pipelines.search.fidelity`); the first trials are the input kind's portfolio (`models.portfolio`)."""
    ledger = TrialLedger(directory, options, prep.input_shape, x_train[:FOOTPRINT_SAMPLES], worker,
                         n_classes=len(prep.class_names))
    fidelity = fidelity_for(len(x_train), options)
    hypermodel = SearchHyperModel(prep, families, ledger, devices.jit_compile if devices else "auto", x_fit=x_train,
                                  base=base, fidelity=fidelity, max_epochs=options.max_epochs)
    oracle_options = dict(objective=kt.Objective(options.objective, direction="max"), seed=options.seed,
                          max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILURES,
                          # In parallel, a trial whose worker died goes back to the queue once (see .parallel).
                          max_retries_per_trial=1 if options.workers > 1 else 0)
    if options.tuner == "hyperband":
        # Brackets repeat until the wall-clock budget, not after one pass.
        oracle_options.update(**hyperband_schedule(fidelity, options.max_epochs),
                              hyperband_iterations=HYPERBAND_ITERATIONS)
    else:
        oracle_options.update(max_trials=options.max_trials)
    first = first_trials(prep.search_kind, families, options.seed)
    oracle = deadline_oracle(options.tuner)(deadline=deadline, first=first, **oracle_options)
    return budgeted_tuner(options.tuner)(
        oracle=oracle, hypermodel=hypermodel, ledger=ledger, hook=on_trial_end, deadline=deadline, seed=options.seed,
        directory=str(directory.parent), project_name=directory.name, overwrite=False,
        distribution_strategy=distribution_strategy(devices) if devices else None)


def run_trials(tuner, inputs: ModelInputs, options: SearchOptions, deadline: float,
               devices: DeviceSetup | None = None) -> None:
    """The tuner's search loop: trains trials until the oracle stops (budget, trials, or too many failures).

    A small validation split switches the tuner to k-fold scoring (`pipelines.search.selection`); a large one is
    scored on a stratified share of its rows (`pipelines.search.subsample.validation_rows`). Past the deadline, a
    trial stops after the batch it is training; one solved in closed form is not started when its family's earlier
    trials took longer than the time left, and no more of that family are drawn (`Budgeted.time_left_for`).
    """
    callbacks = [FailOnNaN(), StopAtDeadline(deadline, every_batch=True)]
    tuner.deadline_stop = callbacks[-1]  # `Budgeted.expect_finish` may move its deadline
    weights = class_weights(np.concatenate([inputs.y_train, inputs.y_val]), options.class_weight)
    tuner.cross_validation = CrossValidation.plan(inputs, options.seed, options.selection)
    tuner.training_rows = len(inputs.x_train)
    tuner.subsampling = None if tuner.cross_validation is not None else \
        Subsampling.plan(inputs.x_train, inputs.y_train, options, devices)
    # imbalanced classes under --class-weight auto: each trial's `balance_classes` says whether it uses the weights
    tuner.hypermodel.balance_choice = options.class_weight == "auto" and weights is not None
    tuner.hypermodel.balanced_first = balanced_first(options.objective)
    if tuner.cross_validation is not None:
        data = dict(batch_size=options.batch_size)
    else:
        scored = validation_rows(inputs.y_val, options.subsample_from, options.seed)
        x_val, y_val = inputs.x_val[scored], inputs.y_val[scored]
        tuner.hypermodel.heldout_rows = x_val
        if options.objective == "val_macro_f1":
            callbacks.insert(0, MacroF1(x_val, y_val))
        data = dict(**fit_inputs(inputs.x_train, inputs.y_train, options.batch_size, devices, shuffle=True,
                                 seed=options.seed),
                    validation_data=validation_inputs(x_val, y_val, options.batch_size, devices))
    try:
        tuner.search(**data, epochs=options.max_epochs, callbacks=callbacks, class_weight=weights, verbose=0)
    except RuntimeError:
        if not stopped_for_failures(tuner.oracle):
            raise


def budgeted_tuner(name: str) -> type:
    """keras-tuner's `name` tuner that times each trial and reports it to a hook."""
    base = tuner_taking_an_oracle(name)

    class Budgeted(base):
        def __init__(self, *args, ledger: TrialLedger, hook: TrialHook | None, seed: int,
                     deadline: float | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.ledger, self._hook, self._started, self.deadline = ledger, hook, {}, deadline
            self.run_seed = seed  # each trial draws from it and its own values (`.seeding`)
            self._seen: dict[str, object] = {}  # trial id -> the trials this process ran
            self.cross_validation: CrossValidation | None = None
            self.subsampling: Subsampling | None = None
            self.training_rows: int | None = None
            self.feature_times: FeatureTimes | None = None  # what the run's finish asks, by the trials' features
            self.deadline_stop: StopAtDeadline | None = None

        def run_trial(self, trial, *args, **kwargs):
            seed_trial(self.run_seed, trial.hyperparameters.values)
            with released_gradients():  # the trial's traced train steps are freed with it (`.gradients`)
                return self._scored_trial(trial, *args, **kwargs)

        def _scored_trial(self, trial, *args, **kwargs):
            cv = self.cross_validation
            if cv is not None:
                rows = len(cv.y) - len(cv.y) // len(cv.folds)
            else:
                rows = self.training_rows
                if self.subsampling is not None:  # large data: this round's share of the rows (`.subsample`)
                    epochs = trial.hyperparameters.values.get("tuner/epochs", kwargs.get("epochs"))
                    data, rows = self.subsampling.fit_kwargs(trial.trial_id, epochs)
                    kwargs = {**{k: v for k, v in kwargs.items() if k not in ("x", "y", "batch_size")}, **data}
            if rows is not None:
                self.ledger.footprints.note(trial.trial_id, rows=rows)
            copied = self.solved_before(trial, rows)
            if copied is not None:
                return copied
            if not self.time_left_for(trial, rows):
                return NOT_STARTED_SCORE
            if cv is not None:
                return self._cross_validate(trial, cv, **kwargs)
            result = super().run_trial(trial, *args, **kwargs)
            heldout = self.hypermodel.heldout.pop(trial.trial_id, None)
            if heldout is not None:
                save_heldout(self.get_trial_dir(trial.trial_id), heldout)
            return result

        def solved_before(self, trial, rows: int | None) -> dict | None:
            """The scores of a later hyperband round of a trial solved in closed form, on the rows its earlier round
            solved on, with that round's model and held-out probabilities copied to it; None for any other trial.
            Solved again it would give the same model: epochs do not change a solved head. On 3,400 tweets a TF-IDF
            head over word pairs took 22 s a solve, and hyperband carried one on twice. Under row shares
            (`.subsample`) only rounds on every row are the same rows: a share is drawn anew for each trial."""
            values = trial.hyperparameters.values
            earlier = values.get("tuner/trial_id")
            known = getattr(self.oracle, "trials", None)  # a parallel worker's client oracle has no trial list
            if earlier is None or not closed_form(values) or known is None or earlier not in known:
                return None
            if self.subsampling is not None and rows != len(self.subsampling.x):
                return None
            footprints, objective = self.ledger.footprints, self.oracle.objective.name
            metrics = known[earlier].metrics
            if footprints.untrained(earlier) or footprints.by_trial.get(earlier, {}).get("rows") != rows \
                    or not metrics.exists(objective):
                return None
            copy_checkpoint(self, earlier, trial.trial_id)
            heldout = load_heldout(self.get_trial_dir(earlier))
            if heldout is not None:
                save_heldout(self.get_trial_dir(trial.trial_id), heldout)
            kept = {k: v for k, v in footprints.by_trial[earlier].items() if k != "ended_at"}
            footprints.note(trial.trial_id, **{COPIED_FROM: earlier, **kept})  # a copy's copy names the solved one
            return {name: metrics.get_last_value(name) for name in metrics.metrics}

        def time_left_for(self, trial, rows: int | None) -> bool:
            """False (and the trial noted as not started) for a trial that cannot stop usefully at the deadline when
            the trials before it say it takes longer than the time left (`TrialLedger.expected_seconds`: its
            family's, scaled to its rows, and twice those for a layer structure not run yet): one solved in closed
            form, or any under k-fold (its k fold models train to convergence at once, and their first batch
            traces all k: a 5-tower ResNet's took 46 s on 36 series). The oracle then draws no more trials of that
            family, so the time left goes to the families that still fit (kernel ridge takes seconds where a CNN
            took minutes) without a table full of trials not started; the search ends when none is left."""
            values = trial.hyperparameters.values
            if self.deadline is None or not (closed_form(values) or self.cross_validation is not None):
                return True
            # a parallel worker's oracle is a client without the trial list: it goes by the trials it ran itself
            known = getattr(self.oracle, "trials", None)
            trials = known.values() if known is not None else self._seen.values()
            expected = self.ledger.expected_seconds(values, rows, trials)
            left = self.deadline - time.time()
            if expected is None or expected <= left:
                return True
            how = "are solved in one go" if closed_form(values) else "train every fold to convergence at once"
            self.ledger.footprints.note(trial.trial_id, not_started=(
                f"not started: {values['family']} trials {how}, and this one may take {expected:.0f} s by the "
                f"trials before it (`TrialLedger.expected_seconds`); {max(left, 0):.0f} s of the search were left"))
            if hasattr(self.oracle, "leave_out"):  # a parallel worker's client oracle has none: the deadline ends it
                self.oracle.leave_out(values["family"])
            return False

        def _cross_validate(self, trial, cv: CrossValidation, *, epochs: int, **kwargs):
            """Train on each fold, score the out-of-fold predictions of every train+val row (keras-tuner #420).

            A family trained by epochs trains its k fold models at once, as towers of one graph, on small inputs
            (`.towers`); a head solved on features fitted without labels shares them across folds.
            """
            hp = trial.hyperparameters
            epochs = hp.values.get("tuner/epochs", epochs)  # hyperband's budget for this round
            if trained_by_epochs(hp.values) and towers_pay(self.hypermodel.prep.input_shape):
                return self._fold_towers(trial, cv, epochs=epochs, **kwargs)
            if features_fit_without_labels(hp.values):
                return self._shared_features(trial, cv, class_weight=kwargs.get("class_weight"))
            heldout = np.zeros((len(cv.y), len(self.hypermodel.prep.class_names)), dtype=np.float32)
            model = None
            # Past the deadline, StopAtDeadline ends each remaining fold after one batch, as it ends a holdout trial.
            for train, val in cv.folds:
                self.hypermodel.x_fit = cv.x[train]
                model = self.hypermodel.build(hp)
                result = self.hypermodel.fit(hp, model, cv.x[train], cv.y[train], epochs=epochs,
                                             validation_data=(cv.x[val], cv.y[val]), **kwargs)
                if isinstance(result, float):  # over the mobile budget: not trained
                    return result
                heldout[val] = model_outputs(model, cv.x[val])
            return self._scored(trial, cv, model, heldout)

        def _fold_towers(self, trial, cv: CrossValidation, *, epochs: int, batch_size: int | None = None,
                         class_weight=None, callbacks=None, **_):
            """The k fold models of a trial trained by epochs, in one graph; to convergence on small data."""
            hp = trial.hyperparameters
            members = [self.hypermodel.build(hp) for _ in cv.folds]
            penalty = self.hypermodel.penalty(hp, members[0])
            if penalty is not None:  # over the mobile budget: not trained
                return penalty
            cap = self.hypermodel.converging_epochs(hp.values, epochs)
            rule = converging_towers(callbacks, cap) if cap is not None else {"epochs": epochs, "callbacks": callbacks}
            heldout, history = fit_towers(members, cv.x, cv.y, cv.folds, batch_size=batch_size,
                                          class_weight=trial_class_weight(hp.values, class_weight), **rule)
            self.hypermodel.note_epochs(len(history.epoch))
            save_bag(self.get_trial_dir(trial.trial_id), members, history)
            return self._scored(trial, cv, members[-1], heldout)

        def _shared_features(self, trial, cv: CrossValidation, class_weight=None):
            """The k folds of a head solved on features fitted without labels (MiniRocket's, a frozen base's): the
            features of every row computed once, then the head solved on each fold's training rows and applied to
            its held-out rows. Computing MiniRocket's features was most of such a trial, done three times per fold.

            MiniRocket is fitted on every row, held-out ones included. Its fit reads no labels (its biases are
            quantiles of a few series' convolutions, its scaling their spread), so no fold's labels reach another.
            The trial keeps a model whose head is solved on every row (one more solve on features already
            computed): the model a refit on train+val would make. The last fold's, which it kept before, had seen
            four fifths of the rows and shipped where the fine-tune did not run: ArrowHead's (36 series) scored
            0.7829-0.7886 on the test split, refitted 0.8571-0.8743.
            """
            hp = trial.hyperparameters
            self.hypermodel.x_fit = cv.x
            model = self.hypermodel.build(hp)
            penalty = self.hypermodel.penalty(hp, model)
            if penalty is not None:  # over the mobile budget: not solved
                return penalty
            head = model.get_layer("probabilities")
            started = time.monotonic()
            features = layer_inputs(model, head, cv.x)
            self.expect_finish(hp.get("family"), (time.monotonic() - started) / len(cv.x))
            weights = trial_class_weight(hp.values, class_weight)
            heldout = np.zeros((len(cv.y), len(self.hypermodel.prep.class_names)), dtype=np.float32)
            for train, val in cv.folds:
                fit_ridge_head(model, cv.x[train], cv.y[train], weights, features=features[train])
                heldout[val] = head_outputs(head, features[val])
            fit_ridge_head(model, cv.x, cv.y, weights, features=features)
            return self._scored(trial, cv, model, heldout)

        def expect_finish(self, family: str, row_seconds: float) -> None:
            """A trial of `family` takes `row_seconds` a row to run: end the search earlier by what the run's finish
            would need past its reserve were the heaviest family's model chosen (`FeatureTimes.search_cut`, each
            family at its fastest trial: a later, faster trial gives time back). Timed where that costs nothing:
            features computed once for every row."""
            if self.feature_times is None or self.deadline is None:
                return
            before = self.finish_cut
            self.feature_times.note(family, row_seconds)
            moved = self.finish_cut - before
            if not moved:
                return
            self.deadline -= moved
            self.oracle.deadline -= moved
            if self.deadline_stop is not None:
                self.deadline_stop.deadline -= moved

        @property
        def finish_cut(self) -> float:
            """Seconds the deadline moved for the trials' features (`expect_finish`)."""
            return 0.0 if self.feature_times is None else self.feature_times.search_cut

        def _scored(self, trial, cv: CrossValidation, model, heldout: np.ndarray) -> dict:
            """Keep `model` (the last fold's, or a head solved on every row) and the out-of-fold probabilities; the
            trial's k-fold scores."""
            save_checkpoint(self, trial.trial_id, model)
            save_heldout(self.get_trial_dir(trial.trial_id), heldout)
            values = scores(cv.y, heldout, self.oracle.objective.name)
            return {self.oracle.objective.name: values["selection"],
                    **{f"cv_{name}": value for name, value in values.items() if name != "selection"}}

        def on_trial_begin(self, trial):
            self._started[trial.trial_id] = time.monotonic()
            self._seen[trial.trial_id] = trial
            self.hypermodel.trial_id = trial.trial_id
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            seconds = time.monotonic() - self._started.pop(trial.trial_id, time.monotonic())
            ended_at = round(time.time(), 2)  # the anytime curve's x
            # keras-tuner's state first (the trial, the oracle, then the tuner file a resume looks for), the ledger
            # after: a search killed in between resumes with every trial the ledger names.
            super().on_trial_end(trial)
            self.ledger.timings.record(trial.trial_id, seconds)
            self.ledger.footprints.note(trial.trial_id, ended_at=ended_at)
            if self._hook:
                self._hook(self.ledger.record(trial), len(self.oracle.trials))

    Budgeted.__name__ = Budgeted.__qualname__ = f"Budgeted{base.__name__}"
    return Budgeted


class SearchHyperModel(KerasflowHyperModel):
    """The search space plus one gate before training: an architecture over the mobile budget is not trained;
    and, on small data, training to convergence (`pipelines.search.fidelity`).

    Its score becomes minus how many times over the budget it is: below any real
    accuracy, and still telling the oracle that smaller is better. The epochs a
    trial trained (the most of its folds under k-fold) go to the ledger. Given
    `heldout_rows` (the scored validation rows of a holdout search), a trial
    whose final weights are its best (solved, or trained to convergence with
    the best epoch restored) keeps its probabilities on them in `heldout`, so the
    winner rule and the ensemble choice need not load and run its model again
    (they do for the others: `pipelines.search.run`).
    """

    def __init__(self, prep: Preprocessing, families: list[str], ledger: TrialLedger,
                 jit_compile: bool | str = "auto", x_fit: np.ndarray | None = None, base: TransferBase | None = None,
                 fidelity: Fidelity = Fidelity.HYPERBAND, max_epochs: int | None = None):
        super().__init__(prep, families, jit_compile=jit_compile, x_fit=x_fit, base=base)
        self.ledger = ledger
        self.trial_id: str | None = None
        self.fidelity, self.max_epochs = fidelity, max_epochs
        self.heldout_rows: np.ndarray | None = None
        self.heldout: dict[str, np.ndarray] = {}

    def fit(self, hp, model, *args, **kwargs):
        penalty = self.penalty(hp, model)
        if penalty is not None:
            return penalty
        cap = self.converging_epochs(hp.values, kwargs.get("epochs", 1))
        if cap is not None:
            kwargs = converging(kwargs, cap)
        result = super().fit(hp, model, *args, **kwargs)
        if self.heldout_rows is not None and self.trial_id is not None and \
                (self.fidelity == Fidelity.CONVERGED or closed_form(hp.values)):
            self.heldout[self.trial_id] = model_outputs(model, self.heldout_rows)
        ran = getattr(result, "epoch", None)  # a History; a closed-form fit returns its metrics
        if ran is not None:
            self.note_epochs(len(ran))
        if isinstance(result, dict) and ROUNDS_FITTED in result:
            self.note_rounds(result[ROUNDS_FITTED], hp.get("trees_count"))
        return result

    def penalty(self, hp, model) -> float | None:
        """The score of an architecture over the mobile budget, which is then not trained; None when it fits."""
        return self.ledger.footprints.measure(self.trial_id, model, hp).get("penalty")

    def converging_epochs(self, values: dict, epochs: int) -> int | None:
        """The most epochs a trial of these hyperparameters trains when it trains to convergence (small data, a
        family trained by epochs); None when it trains the `epochs` it is given (or is solved)."""
        if self.fidelity == Fidelity.CONVERGED and not closed_form(values):
            return self.max_epochs or epochs
        return None

    def note_epochs(self, ran: int) -> None:
        """The epochs the current trial trained, to the ledger (under k-fold, the most of its folds)."""
        if self.trial_id is not None:
            earlier = self.ledger.footprints.by_trial.get(self.trial_id, {}).get("epochs_run", 0)
            self.ledger.footprints.note(self.trial_id, epochs_run=max(earlier, ran))

    def note_rounds(self, fitted: int, asked: int) -> None:
        """The boosting rounds the current trial fitted of those it asked for, to the ledger (under k-fold, summed
        over its folds): a trial the deadline stopped is timed for the rounds it fitted (`TrialLedger`)."""
        if self.trial_id is not None:
            earlier = self.ledger.footprints.by_trial.get(self.trial_id, {})
            self.ledger.footprints.note(self.trial_id, **{ROUNDS_FITTED: earlier.get(ROUNDS_FITTED, 0) + fitted,
                                                          ROUNDS_ASKED: earlier.get(ROUNDS_ASKED, 0) + asked})


class MacroF1(keras.callbacks.Callback):
    """Adds `val_macro_f1` to the epoch logs so keras-tuner can use it as the objective."""

    def __init__(self, x_val, y_val):
        super().__init__()
        self.x_val, self.y_val = x_val, y_val

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.argmax(self.model.predict(self.x_val, verbose=0), axis=1)
        logs["val_macro_f1"] = f1_score(self.y_val, predicted, average="macro", zero_division=0)


class FailOnNaN(keras.callbacks.Callback):
    """Turns a diverged trial into a recorded failure instead of a NaN score."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise kt.errors.FailedTrialError(f"loss became {loss} at epoch {epoch + 1}")


