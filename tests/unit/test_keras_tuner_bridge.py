"""Every keras-tuner internal kerasflow relies on: these fail loudly when a keras-tuner release changes one."""

import time
from pathlib import Path
from concurrent import futures

import grpc
import keras
import keras_tuner as kt
import pytest

from pipelines.search.keras_tuner_bridge import (
    BUILTIN,
    BUILTIN_TUNER_MEMBERS,
    KT_STATUS,
    add_oracle_service,
    deadline_oracle,
    save_checkpoint,
    stopped_for_failures,
    tuner_taking_an_oracle,
)
from pipelines.search.records import TrialStatus


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_tuners_add_nothing_to_kt_tuner_but_what_we_keep(name):
    tuner_class = BUILTIN[name][0]
    added = {member for member, value in vars(tuner_class).items()
             if callable(value) and (not member.startswith("__") or member == "__init__")}
    assert added == BUILTIN_TUNER_MEMBERS[name], "a keras-tuner release changed the built-in tuner; re-check the bridge"
    assert tuner_class.__mro__[1] is kt.Tuner
    rebuilt = tuner_taking_an_oracle(name)
    assert issubclass(rebuilt, tuner_class) and rebuilt.__init__ is not tuner_class.__init__


def test_our_statuses_are_keras_tuners_plus_over_budget_and_not_started():
    theirs = {value for key, value in vars(KT_STATUS).items() if key.isupper()}
    assert theirs == {s.value for s in TrialStatus} - {"OVER_BUDGET", "NOT_STARTED"}


class NeverTrains(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(hp.Choice("units", [1, 2]))])
        model.compile(loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        raise ValueError("this architecture cannot be trained")


def test_the_deadline_oracle_stops_creating_trials_and_the_tuner_keeps_its_own_behaviour(tmp_path):
    oracle = deadline_oracle("random")(objective=kt.Objective("score", "max"), max_trials=5, deadline=time.time() - 1)
    tuner = tuner_taking_an_oracle("random")(oracle=oracle, hypermodel=NeverTrains(), directory=str(tmp_path),
                                             project_name="p")
    assert tuner.oracle is oracle and type(oracle).__mro__[1] is kt.oracles.RandomSearchOracle
    assert oracle.create_trial("tuner0").status == KT_STATUS.STOPPED
    oracle.deadline = time.time() + 60
    assert oracle.create_trial("tuner0").status == KT_STATUS.RUNNING


class TwoFamilies(kt.HyperModel):
    def build(self, hp):
        hp.Choice("family", ["cheap", "slow"])
        hp.Int("width", 1, 64)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(loss="mse")
        return model


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_family_left_out_is_drawn_no_more_and_leaving_out_the_last_ends_the_search(name, tmp_path):
    """Trials of a family that no longer fits in the time left are not drawn again, by random draws, the portfolio
    or (Bayesian) the model's proposals, which favour the family that scored best; the other family still is."""
    rounds = dict(max_epochs=2, hyperband_iterations=100) if name == "hyperband" else dict(max_trials=100)
    if name == "bayesian":
        rounds["num_initial_points"] = 2
    oracle = deadline_oracle(name)(objective=kt.Objective("score", "max"), deadline=time.time() + 600, seed=0,
                                   first=[{"family": "slow"}, {"family": "cheap"}, {"family": "slow", "width": 3}],
                                   **rounds)
    tuner_taking_an_oracle(name)(oracle=oracle, hypermodel=TwoFamilies(), directory=str(tmp_path), project_name="p")

    def run(score):
        trial = oracle.create_trial("tuner0")
        assert trial.status == KT_STATUS.RUNNING
        oracle.update_trial(trial.trial_id, {"score": score(trial.hyperparameters.values)})
        trial.status = KT_STATUS.COMPLETED
        oracle.end_trial(trial)
        return trial.hyperparameters.values["family"]

    best_when_slow = lambda values: 1.0 if values["family"] == "slow" else 0.1  # noqa: E731
    assert [run(best_when_slow) for _ in range(2)] == ["slow", "cheap"], "the portfolio first"
    oracle.leave_out("slow")
    assert oracle.deadline > time.time(), "a family still fits: the search goes on"
    assert {run(best_when_slow) for _ in range(12)} == {"cheap"}, "the portfolio's slow entry is skipped too"
    oracle.leave_out("cheap")
    assert oracle.deadline <= time.time(), "no family left: the search ends"
    assert oracle.create_trial("tuner0").status == KT_STATUS.STOPPED


def test_too_many_consecutive_failures_is_told_apart_from_other_runtime_errors(tmp_path):
    oracle = deadline_oracle("random")(objective=kt.Objective("score", "max"), max_trials=10,
                                       max_consecutive_failed_trials=2, deadline=time.time() + 300)
    tuner = tuner_taking_an_oracle("random")(oracle=oracle, hypermodel=NeverTrains(), directory=str(tmp_path),
                                             project_name="p")
    assert not stopped_for_failures(tuner.oracle)
    with pytest.raises(RuntimeError):
        tuner.search(x=[[0.0]], y=[0.0], epochs=1, verbose=0)
    assert stopped_for_failures(tuner.oracle)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_the_search_state_files_are_written_whole_and_a_rerun_resumes_from_them(name, tmp_path, monkeypatch):
    """keras-tuner writes its state files in place: a retrain killed while it wrote a trial's left an empty
    trial.json, and the rerun's resume failed on it (JSONDecodeError). Each is now renamed onto its place whole."""
    import json
    import os

    renamed = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renamed.append(Path(target).name),
                                                                replace(source, target))[1])
    rounds = dict(max_epochs=2) if name == "hyperband" else dict(max_trials=2)
    if name == "bayesian":
        rounds["num_initial_points"] = 1

    def tuner():
        oracle = deadline_oracle(name)(objective=kt.Objective("loss", "min"), deadline=time.time() + 300, seed=0,
                                       **rounds)
        return tuner_taking_an_oracle(name)(oracle=oracle, hypermodel=TwoFamilies(), directory=str(tmp_path),
                                            project_name="p")

    first = tuner()
    first.search(x=[[0.0], [1.0]], y=[0.0, 1.0], epochs=1, verbose=0)
    assert {"trial.json", "oracle.json", "tuner0.json"} <= set(renamed), renamed
    files = [*(tmp_path / "p").glob("trial_*/trial.json"), tmp_path / "p" / "oracle.json"]
    assert len(files) > 1 and all(json.loads(f.read_text()) for f in files)
    assert not list((tmp_path / "p").rglob("*.tmp")), "no temporary file left"
    assert len(tuner().oracle.trials) == len(first.oracle.trials), "a rerun reloads them"


def test_the_oracle_is_served_over_keras_tuners_grpc_service():
    oracle = deadline_oracle("random")(objective=kt.Objective("score", "max"), max_trials=1, deadline=time.time() + 60)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    add_oracle_service(server, oracle)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        from keras_tuner.src import protos

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = protos.get_service_grpc().OracleStub(channel)
            space = stub.GetSpace(protos.get_service().GetSpaceRequest(), timeout=10)
        assert space.hyperparameters is not None
    finally:
        server.stop(grace=None)


def test_given_starting_points_come_before_random_ones(tmp_path):
    oracle = deadline_oracle("random")(objective=kt.Objective("score", "max"), max_trials=5,
                                       deadline=time.time() + 60, first=[{"units": 2}, {"units": 1}])
    tuner_taking_an_oracle("random")(oracle=oracle, hypermodel=NeverTrains(), directory=str(tmp_path),
                                     project_name="p")
    first, second = oracle.create_trial("tuner0"), oracle.create_trial("tuner1")
    assert [first.hyperparameters.values, second.hyperparameters.values] == [{"units": 2}, {"units": 1}]
    assert oracle.create_trial("tuner2").status == KT_STATUS.STOPPED, "both values tried: random finds no new one"
    assert oracle.served_first() == [first.trial_id, second.trial_id], "the trial that tried each entry of `first`"


@pytest.mark.parametrize("name", ["hyperband", "random"])
def test_a_checkpoint_saved_outside_keras_tuners_fit_is_what_it_loads(tmp_path, name):
    options = dict(max_epochs=3) if name == "hyperband" else dict(max_trials=3)
    oracle = deadline_oracle(name)(objective=kt.Objective("score", "max"), deadline=time.time() + 60, **options)
    tuner = tuner_taking_an_oracle(name)(oracle=oracle, hypermodel=NeverTrains(), directory=str(tmp_path),
                                         project_name="p")
    trial = oracle.create_trial("tuner0")
    model = tuner.hypermodel.build(trial.hyperparameters)
    model.set_weights([w + 3.0 for w in model.get_weights()])
    save_checkpoint(tuner, trial.trial_id, model)
    loaded = tuner.load_model(trial)
    assert all((a == b).all() for a, b in zip(loaded.get_weights(), model.get_weights()))
