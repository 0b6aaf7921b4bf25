"""great-expectations suites: built from a profile, saved, reloaded, and failing with named columns; text drift."""

import numpy as np
import pandas as pd
import pytest

import data_checks
from data_checks.drift import compare_profiles, read_reference, write_reference
from data_checks.suite import RANGE_MIN_VALUES
from pipelines.errors import DataError, ValidationFailed
from pipelines.config import TrainConfig
from pipelines.load import check_source, check_test_data, load_dataset, load_path, split_dataset
from pipelines.text.profile import drift_against, marked, profile
from pipelines.text.tokenizer import Tokenizer
from pipelines.validate import validate_splits
from tests.conftest import make_table


def _frame(table: pd.DataFrame) -> pd.DataFrame:
    return data_checks.profile_frame("table", table.drop(columns="label"), table["label"].to_numpy())


def test_suite_round_trips_through_json_and_passes_its_own_data(tmp_path):
    frame = _frame(make_table())
    suite = data_checks.build_suite(frame, "demo")
    path = data_checks.save_suite(suite, tmp_path / "expectations.json")
    reloaded = data_checks.load_suite(path)
    assert len(reloaded.expectations) == len(suite.expectations) > 8
    assert data_checks.validate_frame(frame, reloaded).success
    assert reloaded.meta["rows_per_class"] == {"high": 20, "low": 20, "mid": 20}


@pytest.mark.parametrize("breakage, expected", [
    (lambda f: f.assign(x1=np.nan), "column 'x1': too many missing values"),
    (lambda f: f.assign(x2=np.where(np.arange(len(f)) == 5, np.inf, f["x2"])), "column 'x2': values are not finite"),
    (lambda f: f.assign(x1=f["x1"] * 1000), "column 'x1': values outside"),
    (lambda f: f.drop(columns="colour"), "table: columns differ from the training data; missing ['colour']"),
    (lambda f: f.assign(x2=f["x2"].astype(str) + "kg"), "column 'x2': type"),
])
def test_broken_data_fails_with_the_column_named(breakage, expected):
    suite = data_checks.build_suite(_frame(make_table()), "demo")
    report = data_checks.validate_frame(_frame(breakage(make_table())), suite)
    assert not report.success
    assert any(expected in line for line in report.failures), report.failures


def test_a_range_needs_enough_training_values_and_its_failure_counts_values():
    """A range drawn from four values (medicaldata's opt: drinks per day, 4 of 420 rows) stopped a retrain at one
    value of 35 among six; and "1 of 268 rows" was told where 17% of the filled values broke the 10% rule."""
    rows = np.arange(120)
    frame = make_table(120).assign(few=np.where(rows < RANGE_MIN_VALUES - 1, rows % 5, np.nan),
                                   half=np.where(rows % 2 == 0, rows % 5, np.nan))
    suite = data_checks.build_suite(_frame(frame), "demo")
    ranged = {e.configuration.kwargs["column"] for e in suite.expectations
              if type(e).__name__ == "ExpectColumnValuesToBeBetween" and e.configuration.kwargs.get("mostly")}
    assert {"half", "x1", "x2"} <= ranged and "few" not in ranged
    new = frame.assign(few=np.where(rows < 6, 35.0, np.nan))
    new.loc[(rows < 40) & new["half"].notna(), "half"] = 40.0  # 20 of its 60 values
    failures = data_checks.validate_frame(_frame(new), suite).failures
    assert failures == ["column 'half': values outside [-1, 5] in more than 10% of its values; 20 of 60 values "
                        "(60 rows empty); e.g. [40.0, 40.0, 40.0]"], failures


def test_the_cause_is_told_first_and_its_consequences_left_out():
    suite = data_checks.build_suite(_frame(make_table()), "demo")
    dropped = data_checks.validate_frame(_frame(make_table().drop(columns="x1")), suite).failures
    assert dropped == ["table: columns differ from the training data; missing ['x1'], unexpected []"]
    retyped = data_checks.validate_frame(_frame(make_table().assign(x2="heavy")), suite).failures
    assert retyped[0].startswith("column 'x2': type") and not any("not finite" in line for line in retyped)


def test_a_wide_frame_is_checked_in_column_batches_with_the_same_findings(monkeypatch):
    """Great-expectations' time per expectation grows with the batch's columns: a frame wider than
    COLUMNS_PER_BATCH is checked that many columns at a time, and must find what one batch finds."""
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(40, 24)), columns=[f"c{i:02d}" for i in range(24)])
    wide["label"] = np.arange(40) % 2
    suite = data_checks.build_suite(_frame(wide), "wide")
    broken = _frame(wide.drop(columns="c03").assign(c20="heavy", c22=np.where(np.arange(40) == 7, np.inf, 1.0)))
    one_batch = data_checks.validate_frame(broken, suite)
    batches = []
    original = data_checks.suite._batches
    monkeypatch.setattr(data_checks.suite, "COLUMNS_PER_BATCH", 5)
    monkeypatch.setattr(data_checks.suite, "_batches", lambda *a: batches.append(original(*a)) or batches[-1])
    in_batches = data_checks.validate_frame(broken, suite)
    assert [len(part.columns) for part, _ in batches[0]] == [24, 4, 5, 5, 5, 5]  # the table's, then c03 left out
    assert in_batches.checked == one_batch.checked == len(suite.expectations)
    assert in_batches.failures == one_batch.failures
    assert in_batches.failures[0].startswith("table: columns differ") and len(in_batches.failures) == 3
    assert data_checks.validate_frame(_frame(wide), suite).success


def test_unknown_label_fails():
    suite = data_checks.build_suite(_frame(make_table()), "demo")
    report = data_checks.validate_frame(_frame(make_table().assign(label="new")), suite)
    assert any("column 'label': values outside the known set" in line for line in report.failures)


def test_an_empty_column_stops_the_run_and_a_mostly_empty_one_is_data(tmp_path):
    frame = make_table(120).assign(empty=np.nan, sparse=None)
    frame.loc[[4, 50, 97], "sparse"] = "shed"  # ames's Misc_Feature: 97% empty, most houses have none
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"t.csv: column 'empty' is empty on every one of its 120 rows; fill it or "
                                        r"leave it out \(--column-role empty=ignore\)"):
        load_path(path, "label")
    data = load_path(path, "label", given_roles={"empty": "ignore"})
    test = tmp_path / "test.csv"
    frame.drop(columns="empty").assign(sparse="   ").to_csv(test, index=False)  # blank: empty on every row
    check_source(test, "label", None, {})
    assert load_path(test, "label", training=False).features["sparse"].str.isspace().all(), "a test file's may be empty"
    with pytest.raises(DataError, match="column 'sparse' is empty on every one of its 120 rows"):
        check_source(test, "label", 3, {})
    splits = split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert 0 < splits.train.features["sparse"].notna().mean() < 0.05, "below the 5% filled a column once needed"
    validation = validate_splits(splits, "demo")  # the training split is not held to a share of 'sparse' filled
    assert all(report.success for report in validation.reports)
    seventy = make_table(10).assign(x2=[1.0] * 3 + [np.nan] * 7)  # 70% empty: new data must fill 5% of it
    suite = data_checks.build_suite(_frame(seventy), "seventy")
    assert "column 'x2': too many missing values (allowed 95%)" in \
        data_checks.validate_frame(_frame(seventy.assign(x2=np.nan)), suite).failures[0]


def test_a_test_file_holds_the_columns_the_model_takes_and_may_lack_the_dropped_ones(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.parquet"
    make_table(60).assign(row=np.arange(60), note="x").to_csv(train, index=False)  # `row`: a row number, dropped
    make_table(30).drop(columns=["colour"]).to_parquet(test)
    with pytest.raises(DataError, match=r"test.parquet: no 2 columns \(colour, note\), which the training data "
                                        r"\(train.csv\) has and the model takes; add them"):
        check_test_data(test, train, "label", {})
    with pytest.raises(DataError, match="no column note"):
        check_test_data(test, train, "label", {"colour": "ignore"})
    check_test_data(test, train, "label", {"colour": "ignore", "note": "identifier"})
    config = TrainConfig(data=train, test_data=test, target="label", column_roles={"colour": "ignore",
                                                                                    "note": "identifier"})
    data, tested = load_dataset(config)
    assert list(tested.features.columns) == list(data.features.columns) == ["x1", "x2"], "the absent columns were not needed"


def test_a_test_folder_of_the_training_classes_passes_and_one_of_another_class_or_kind_is_refused(tmp_path):
    from PIL import Image

    for folder, classes in (("train", ["cat", "dog"]), ("same", ["dog"]), ("other", ["cat", "fox"])):
        for name in classes:
            (tmp_path / folder / name).mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / folder / name / "0.png")
    check_test_data(tmp_path / "same", tmp_path / "train", None, {})  # a test folder may lack a class
    with pytest.raises(DataError, match=r"other: test labels \['fox'\] never appear in the training data"):
        check_test_data(tmp_path / "other", tmp_path / "train", None, {})
    make_table(30).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="t.csv: test data is table data but training data is image data"):
        check_test_data(tmp_path / "t.csv", tmp_path / "train", "label", {})


def test_sequences_with_nan_fail_the_non_finite_check():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 10, 2)).astype(np.float32)
    labels = np.array(["a", "b"] * 6, dtype=object)
    suite = data_checks.build_suite(data_checks.profile_frame("sequence", x, labels), "seq")
    x[3, 4, 1] = np.nan
    report = data_checks.validate_frame(data_checks.profile_frame("sequence", x, labels), suite)
    assert any("column 'non_finite'" in line for line in report.failures)


def test_sequence_profile_measures_true_length():
    x = np.zeros((2, 6, 1), np.float32)
    x[0, :4] = 1.0
    x[1, :6] = 2.0
    frame = data_checks.profile_frame("sequence", x, np.array(["a", "b"], dtype=object))
    assert frame["length"].tolist() == [4, 6]


def test_many_validations_in_one_process():
    """Frames come and go (their ids are reused); validation must not depend on them."""
    suite = data_checks.build_suite(_frame(make_table()), "demo")
    assert all(data_checks.validate_frame(_frame(make_table(seed=i)), suite).success for i in range(12))


def test_a_random_part_of_the_same_file_meets_the_row_rules_only(tmp_path):
    """A nearly constant column whose rare values fell into the validation rows (as on a real 281-row table):
    the draw, not the data, broke the range check, so the run goes on; a separate --test-data file is still held
    to every expectation, and non-finite values fail in any split."""
    from pipelines.load import Dataset, Splits

    rng = np.random.default_rng(0)
    train = make_table(60).assign(assay=4.5)
    val = make_table(30, seed=1).assign(assay=np.where(np.arange(30) < 6, 9.0, 4.5))  # 20% far outside [4.5, 4.5]
    parts = [Dataset("table", f.drop(columns="label"), f["label"].to_numpy(dtype=object), "one.csv")
             for f in (train, val, make_table(30, seed=2).assign(assay=4.5))]
    splits = Splits(*parts, class_names=["high", "low", "mid"])
    validation = validate_splits(splits, "same-file")
    assert all(report.success for report in validation.reports)
    other = Dataset("table", parts[1].features, parts[1].labels, "their-test.csv")
    with pytest.raises(ValidationFailed, match="column 'assay': values outside"):
        validate_splits(Splits(parts[0], parts[2], other, ["high", "low", "mid"]), "test file")
    broken = parts[1].features.assign(x2=np.where(np.arange(30) == 3, np.inf, rng.normal(size=30)))
    with pytest.raises(ValidationFailed, match="column 'x2': values are not finite"):
        validate_splits(Splits(parts[0], Dataset("table", broken, parts[1].labels, "one.csv"), parts[2],
                               ["high", "low", "mid"]), "same-file")


def test_frames_held_to_row_rules_are_checked_in_one_batch_and_a_failure_names_its_frame(monkeypatch):
    """Row rules hold for a frame exactly when they hold for each of its rows, so frames of one table are checked
    as one batch (great-expectations' time goes on each expectation, not each row); a failure checks them one by
    one to say which broke which rule; a suite with statistical rules (`mostly` < 1) never joins frames."""
    import data_checks.suite as suite_module

    calls = []
    validate = suite_module.validate_frame
    monkeypatch.setattr(suite_module, "validate_frame", lambda frame, suite: calls.append(len(frame)) or
                        validate(frame, suite))
    suite = data_checks.build_suite(_frame(make_table()), "demo")
    rules = data_checks.row_rules_only(suite)
    parts = [_frame(make_table(20, seed=1)), _frame(make_table(30, seed=2))]
    reports = data_checks.validate_frames(parts, rules)
    assert calls == [50] and all(r.success and r.checked == len(rules.expectations) for r in reports)
    broken = _frame(make_table(30, seed=2).assign(x2=np.where(np.arange(30) == 4, np.inf, 0.0)))
    calls.clear()
    reports = data_checks.validate_frames([parts[0], broken], rules)
    assert calls == [50, 20, 30] and reports[0].success
    assert any("column 'x2': values are not finite" in line for line in reports[1].failures), reports[1].failures
    calls.clear()
    assert all(r.success for r in data_checks.validate_frames(parts, suite)) and calls == [20, 30]


def test_the_training_split_is_held_to_its_row_rules_with_its_drawn_splits_and_the_report_says_so(tmp_path,
                                                                                                  monkeypatch):
    """Its own value ranges and missing-value shares hold on the training rows by construction: they are left out
    there, and the report line says so; its types, finite values and labels are still checked, in one batch with the
    splits drawn from the same file (held to the same rules)."""
    import data_checks.suite as suite_module

    calls = []
    validate = suite_module.validate_frame
    monkeypatch.setattr(suite_module, "validate_frame", lambda frame, suite: calls.append(len(frame)) or
                        validate(frame, suite))
    path = tmp_path / "t.csv"
    make_table().to_csv(path, index=False)
    splits = split_dataset(load_path(path, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    validation = validate_splits(splits, "demo")
    statistical = [e for e in validation.suite.expectations if (getattr(e, "mostly", None) or 1) < 1]
    train, val, test = validation.reports
    assert statistical and train.checked == len(validation.suite.expectations) - len(statistical)
    assert "value ranges and missing-value shares not checked" in train.to_markdown()
    assert "value ranges" not in val.to_markdown()
    assert val.checked == test.checked == train.checked and calls == [60], "three splits, one batch"
    frame = make_table().assign(x2=lambda f: np.where(np.arange(len(f)) % 7 == 0, np.inf, f["x2"]))
    frame.to_csv(path, index=False)
    broken = split_dataset(load_path(path, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    with pytest.raises(ValidationFailed, match=r"demo on train .*\n- column 'x2': values are not finite"):
        validate_splits(broken, "demo")


def _zipf_texts(rows: int, seed: int, prefix: str = "w") -> pd.DataFrame:
    """Texts as people write them: a few words in every text, most words rare (Zipf's law, as in English)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 40, rows)
    return pd.DataFrame({"body": [" ".join(f"{prefix}{r}" for r in rng.zipf(1.3, n) % 20_000) for n in lengths]})


# vocabularies cut among the words seen 3 times (plain shares nearly right: most unknown words are cut ones) and
# once, and one not cut
@pytest.mark.parametrize("max_words, plain_drifts", [(300, False), (1_000, True), (10_000, True)])
def test_the_drift_reference_of_texts_has_the_unknown_share_new_texts_of_the_same_kind_show(max_words, plain_drifts):
    """Every word of a training text is in the vocabulary counted from it: its plain unknown share is lower than
    any new text's, and a reference made of it flagged new texts of the same source as drifted."""
    train, val, new = _zipf_texts(600, 0), _zipf_texts(150, 1), _zipf_texts(400, 2)
    other = _zipf_texts(400, 3, prefix="v")  # another vocabulary altogether
    tokenizer = Tokenizer.fit(train["body"], max_words=max_words)
    seen = pd.concat([train, val], ignore_index=True)
    labels = np.zeros(len(seen), dtype=object)

    def unknown(reference: pd.DataFrame, current: pd.DataFrame):
        return next(c for c in compare_profiles(reference, current).columns if c.column == "body.unknown")

    reference = profile("table", seen, labels, ["body"], tokenizer, counted_rows=len(train))
    plain = profile("table", seen, labels, ["body"], tokenizer)
    current = profile("table", new, np.zeros(len(new), dtype=object), ["body"], tokenizer)
    assert unknown(plain, current).drifted == plain_drifts, "the reference as it was: new texts of one source drift"
    assert not unknown(reference, current).drifted
    assert abs(reference["body.unknown"].mean() - current["body.unknown"].mean()) < 0.01
    assert (reference["body.unknown"].iloc[len(train):] == plain["body.unknown"].iloc[len(train):]).all(), \
        "validation rows were not counted: their plain share is already a new text's"
    assert unknown(reference, profile("table", other, np.zeros(len(other), dtype=object), ["body"],
                                      tokenizer)).drifted, "texts of other words still drift"


def test_a_reference_written_before_held_out_shares_leaves_them_untested_and_says_so(tmp_path):
    train, new = _zipf_texts(300, 0), _zipf_texts(200, 2)
    tokenizer = Tokenizer.fit(train["body"])
    labels = np.zeros(len(train), dtype=object)
    current = profile("table", new, np.zeros(len(new), dtype=object), ["body"], tokenizer)
    old = profile("table", train, labels, ["body"], tokenizer)  # as runs wrote it: each text's own share
    write_reference(old, tmp_path / "old.parquet")
    report = drift_against(read_reference(tmp_path / "old.parquet"), current)
    tested = {c.column for c in report.columns}
    assert "body.unknown" not in tested and "body.tokens" in tested
    assert any(note.startswith("body.unknown not tested: this model's reference holds each training text's own")
               for note in report.notes), report.notes
    write_reference(marked(profile("table", train, labels, ["body"], tokenizer, counted_rows=len(train))),
                    tmp_path / "new.parquet")
    report = drift_against(read_reference(tmp_path / "new.parquet"), current)
    assert "body.unknown" in {c.column for c in report.columns} and not report.notes, "the mark is kept in the file"
