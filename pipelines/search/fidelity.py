"""How long each search trial trains: to convergence on small data, hyperband's rounds on large data.

Hyperband (Li et al. 2018) trains many trials for a few epochs and carries
the best on: its first rounds give a trial 1-3 epochs. On a few hundred
rows that compares unlike things: a gradient-trained model after 1-3 epochs
is far from its best, while the closed-form families (`linear`, `trees`,
`rocket`, a frozen base's probe) are scored at theirs. And an epoch over a
small set costs little. So below `CONVERGE_ROWS` training rows (and when
hyperband's row subsampling does not apply, `pipelines.search.subsample`)
every gradient-trained trial trains until its validation loss has not
improved for `PATIENCE` epochs, its learning rate halved each time the loss
has not improved for `PLATEAU_PATIENCE` (Keras's `ReduceLROnPlateau`), up
to the search's `max_epochs` (which `fit_to_data` raises to at least
`CONVERGED_EPOCH_FACTOR` times the asked epochs, so the cap bounds a trial
that keeps improving, not one that would stop), and keeps its best epoch's
weights;
hyperband then runs brackets of one round (no successive halving: a trial
trained to convergence has nothing left to gain from a later round). On
large data an epoch is costly: hyperband keeps its short first rounds, and
the random and Bayesian tuners train every trial `max_epochs` epochs. The
rule that applied is the search result's `fidelity`, and the report says it.
"""

from __future__ import annotations

from enum import StrEnum

import keras

from pipelines.config import SearchOptions

CONVERGE_ROWS = 2000  # training rows below which every trial is trained to convergence
PATIENCE = 5  # epochs without a better validation loss before a converging trial stops
# A converging trial's epoch cap, in multiples of the asked `max_epochs`. At 20 the digits portfolio CNN (augmented,
# five fold towers, 1,222 images) hit the cap in each of three seeds, still improving; at 60 it stopped by itself after
# 32, 34 and 59 epochs, out-of-fold 0.9803 -> 0.9851 and test 0.9889 -> 0.9935 (means), 32 s -> 47 s a trial. The dense
# portfolio MLP stopped before 20 on breast_cancer, wine and digits alike (unchanged). The cost: sampled MLPs at small
# learning rates train longer (a minute held 12 trials on breast_cancer, against 23), and digits at ten minutes 20
# trials, against 40, one CNN taking over two minutes.
CONVERGED_EPOCH_FACTOR = 3
# A converging trial's learning rate is halved after this many epochs without a better validation loss, before the
# `PATIENCE` that ends it: at a fixed rate the augmented digits portfolio CNN (the make-run split, five fold towers)
# stopped on a noisy plateau, six draws 0.9742-0.9847 out-of-fold (mean 0.9817, the earliest stop at 25 epochs the
# lowest); halving the rate, 0.9812-0.9867 (mean 0.9840) in 33-45 epochs, against 25-60. A patience of 10 instead
# ran to the 60-epoch cap on three of five draws for 0.9784-0.9888.
PLATEAU_PATIENCE = 2
PLATEAU_FACTOR = 0.5
MIN_LEARNING_RATE = 1e-6


class Fidelity(StrEnum):
    """How long a search's trials train."""

    CONVERGED = "converged"  # until the validation loss stops improving (small data)
    HYPERBAND = "hyperband"  # hyperband's rounds: a few epochs first, more for the best
    MAX_EPOCHS = "max_epochs"  # every trial `max_epochs` epochs (random and Bayesian tuners on large data)


def fidelity_for(training_rows: int, options: SearchOptions) -> Fidelity:
    """The rule for a search of `options` on `training_rows` rows."""
    subsampled = bool(options.subsample_from) and training_rows >= options.subsample_from
    if training_rows < CONVERGE_ROWS and not subsampled:
        return Fidelity.CONVERGED
    return Fidelity.HYPERBAND if options.tuner == "hyperband" else Fidelity.MAX_EPOCHS


def hyperband_schedule(fidelity: Fidelity, max_epochs: int) -> dict:
    """The hyperband oracle's `max_epochs` and `factor`: one round per bracket, of `max_epochs`, when converging
    (a factor above `max_epochs` leaves no room for a shorter round); else rounds growing threefold."""
    return dict(max_epochs=max_epochs, factor=max_epochs + 1 if fidelity == Fidelity.CONVERGED else 3)


def lower_on_plateau(monitor: str) -> keras.callbacks.Callback:
    """Halves the learning rate when `monitor` has not improved for `PLATEAU_PATIENCE` epochs (a converging trial's
    schedule; `monitor` must be in the epoch's logs before this callback runs)."""
    return keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE,
                                             min_lr=MIN_LEARNING_RATE)


def converging(fit_kwargs: dict, max_epochs: int) -> dict:
    """`model.fit` arguments that train up to `max_epochs` epochs and stop when the validation loss (the training
    loss without validation data) has not improved for `PATIENCE` epochs, with the best epoch's weights; the
    learning rate halved on each plateau (`lower_on_plateau`)."""
    monitor = "val_loss" if fit_kwargs.get("validation_data") is not None else "loss"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=PATIENCE, restore_best_weights=True)
    return {**fit_kwargs, "epochs": max_epochs, "initial_epoch": 0,
            "callbacks": [*(fit_kwargs.get("callbacks") or []), lower_on_plateau(monitor), stop]}


def converging_towers(callbacks: list | None, max_epochs: int) -> dict:
    """`fit_towers` arguments for fold towers trained to convergence: up to `max_epochs` epochs, each tower stopped
    after `PATIENCE` epochs without a better loss on its held-out fold (`FoldStopping`, which logs the folds' mean
    as `val_loss` before the other callbacks run), the towers' shared learning rate halved on that mean's
    plateaus (`lower_on_plateau`)."""
    return {"epochs": max_epochs, "patience": PATIENCE,
            "callbacks": [*(callbacks or []), lower_on_plateau("val_loss")]}


def fidelity_text(fidelity: str, training_rows: int) -> str:
    """The rule in words, for the report."""
    if fidelity == Fidelity.CONVERGED:
        return (f"small training set ({training_rows:,} rows, under {CONVERGE_ROWS:,}): every gradient-trained "
                f"trial trained until its validation loss stopped improving for {PATIENCE} epochs (up to max "
                f"epochs; its learning rate halved after each {PLATEAU_PATIENCE} epochs without improving), best "
                "epoch kept, so it is compared at its best with the closed-form families; no short hyperband rounds")
    if fidelity == Fidelity.HYPERBAND:
        return "hyperband's rounds: many trials for a few epochs, the best carried on with more"
    if fidelity == Fidelity.MAX_EPOCHS:
        return "every trial trained for max epochs"
    return ""
