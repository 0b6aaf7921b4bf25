"""Column roles: identifiers dropped, free text kept as token ids, dates as numbers, capped categories, overrides."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from pipelines.columns import (BLANK, DATE_PARTS, MAX_CATEGORIES, MISSING_MARK, TIME_PART, ColumnRole, apply_roles,
                               from_json, infer_roles)
from pipelines.config import TrainConfig
from pipelines.errors import DataError
from pipelines.load import check_source, load_dataset, split_dataset
from pipelines.preprocess import encode_features, fit_preprocessing
from tests.conftest import make_table

WORDS = ["quick", "brown", "fox", "jumps", "over", "lazy", "dog", "again", "today", "never"]


WIDE = MAX_CATEGORIES + 30  # a category's values in a table wide enough for the cap
WIDE_ROWS = 600  # rows enough for a training split to hold more than MAX_CATEGORIES of them


def messy_table(n: int = 120, seed: int = 0, cities: int = 80) -> pd.DataFrame:
    """A table as users have it: an ID, a row number, free text, dates, a category, numbers and labels."""
    rng = np.random.default_rng(seed)
    label = np.array(["no", "yes"])[np.arange(n) % 2]
    return pd.DataFrame({
        "id": [f"id_{i:05d}" for i in range(n)],
        "row": np.arange(n),
        "review": [" ".join(rng.choice(WORDS, 6)) + f" #{i}" for i in range(n)],
        "signed_up": pd.date_range("2024-01-01", periods=n, freq="37h").strftime("%Y-%m-%d").tolist(),
        "city": [f"city{i % cities}" for i in range(n)],
        "amount": rng.normal(10, 3, n) + (label == "yes") * 5,
        "visits": rng.integers(0, 5, n),
        "member": rng.random(n) > 0.5,
        "label": label,
    })


def test_each_columns_role_is_inferred_from_its_values():
    roles = infer_roles(messy_table(WIDE_ROWS, cities=WIDE).drop(columns=["label"]))
    assert {name: role.role for name, role in roles.items()} == {
        "id": ColumnRole.IDENTIFIER, "row": ColumnRole.IDENTIFIER, "review": ColumnRole.TEXT,
        "signed_up": ColumnRole.DATE, "city": ColumnRole.CATEGORICAL, "amount": ColumnRole.NUMERIC,
        "visits": ColumnRole.NUMERIC, "member": ColumnRole.CATEGORICAL}
    assert roles["city"].capped and f"{WIDE} values" in roles["city"].why
    assert not infer_roles(messy_table()[["city"]])["city"].capped, "80 values are all kept"
    assert "600 distinct values in 600 rows" in roles["id"].why and "words per value" in roles["review"].why
    small = infer_roles(messy_table(10).drop(columns=["label"]))
    assert small["id"].role == ColumnRole.CATEGORICAL, "ten rows are too few to call a column an identifier"


def test_a_loaded_table_drops_ids_keeps_text_turns_dates_into_numbers_and_caps_categories(tmp_path):
    messy_table(WIDE_ROWS, cities=WIDE).to_csv(tmp_path / "t.csv", index=False)
    data, _ = load_dataset(TrainConfig(data=tmp_path / "t.csv", target="label"))
    assert list(data.features.columns) == ["review", *(f"signed_up.{p}" for p in DATE_PARTS), "city", "amount",
                                           "visits", "member"]
    assert data.features["signed_up.year"].tolist()[:2] == [2024.0, 2024.0]
    assert data.features["signed_up.weekday"].iloc[0] == 0.0, "2024-01-01 was a Monday"
    assert any("'id' dropped: an identifier" in note for note in data.notes)
    assert any("'review' is text (free text" in note and "token ids" in note for note in data.notes)
    splits = split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    assert len(prep.vocabularies["city"]) == MAX_CATEGORIES
    assert prep.roles["id"]["role"] == ColumnRole.IDENTIFIER and prep.text_columns == ["review"]
    assert prep.input_shape == [8 + prep.tokenizer["length"]], "8 columns, then the review's token ids"
    codes = encode_features(splits.test, prep)[:, len(prep.numeric_columns) + prep.categorical_columns.index("city")]
    known = splits.test.features["city"].isin(prep.vocabularies["city"]).to_numpy()
    assert (codes[~known] == 0).all() and (codes[known] > 0).all(), "cities beyond the kept ones encode as other"


def test_timestamps_with_a_zone_are_dates_with_their_hour_as_written():
    """ISO 8601 timestamps as APIs export them ("Z", "+02:00") were read as identifiers and dropped."""
    frame = pd.DataFrame({
        "created_at": ["2016-11-08T13:45:00Z", "2016-11-09T02:10:59.000Z", "2016-11-10 23:59:00+02:00",
                       "2016-11-11 07:00:00 UTC"] * 10,  # the last as BigQuery exports a timestamp
        "us_dashed": ["12-31-2024", "1-2-2024", "3-4-2023", "5-6-2022"] * 10,
        "day": ["2024-01-01", "2024-02-03", "2023-05-06", "2022-07-08"] * 10})
    roles = infer_roles(frame)
    assert {name: (role.role, role.timed) for name, role in roles.items()} == {
        "created_at": (ColumnRole.DATE, True), "us_dashed": (ColumnRole.DATE, False), "day": (ColumnRole.DATE, False)}
    parts = apply_roles(frame, roles)
    assert parts["created_at.hour"].tolist()[:4] == [13.0, 2.0, 23.0, 7.0], "the hour as written: its zone ignored"
    assert parts["created_at.day"].tolist()[:4] == [8.0, 9.0, 10.0, 11.0] and "day.hour" not in parts
    assert parts["us_dashed.year"].tolist()[:3] == [2024.0, 2024.0, 2023.0], "a date's last digits are no zone"
    assert infer_roles(frame, {"created_at": "date", "day": "date"})["created_at"].timed, "an override reads times"
    assert not infer_roles(frame, {"day": "date"})["day"].timed
    assert TIME_PART == "hour"


def test_clock_readings_are_one_number_of_hours():
    """Times of day and durations as people write them: capped categories (or identifiers, each value unique)
    before, whose order the model could not see."""
    frame = pd.DataFrame({"captured": ["13:15", "9:58", "7:05", None, "23:59"] * 6,
                          "finish": [f"2:{27 + i}:{i % 60:02d}.5" for i in range(30)],
                          "odds": ["3:1", "2:1", "1:0", "4:2", "1:1"] * 6})  # ratios: one digit after the colon
    roles = infer_roles(frame)
    assert {name: role.role for name, role in roles.items()} == {
        "captured": ColumnRole.CLOCK, "finish": ColumnRole.CLOCK, "odds": ColumnRole.CATEGORICAL}
    numbers = apply_roles(frame, roles)
    assert numbers["captured"].tolist()[:3] == pytest.approx([13.25, 9 + 58 / 60, 7 + 5 / 60])
    assert np.isnan(numbers["captured"].iloc[3])
    assert numbers["finish"].iloc[0] == pytest.approx(2 + 27 / 60 + 0.5 / 3600)
    assert numbers["finish"].is_monotonic_increasing, "later finishes are larger numbers"
    assert np.isnan(apply_roles(pd.DataFrame({"captured": ["noon"]}), roles)["captured"].iloc[0]), "unreadable: empty"


def test_missing_marks_and_blank_cells_are_missing_values():
    """A SAS export writes a missing number as ".", UCI's files as "?", and pads an empty cell with spaces: such a
    column of numbers was refused as "numbers with some text", a blank clock reading made its column categories."""
    frame = pd.DataFrame({"crp": ["1.5", ".", "2.25", "3", "."] * 6,
                          "score": ["10", "?", "12", "-", "14"] * 6,
                          "released": ["13:30", None, "-", "9:05", None] * 6,
                          "rhesus": ["+", "-", "+", "+", "-"] * 6,  # no digit anywhere: categories
                          "code": ["1", "2", "3", "4", "x"] * 6})
    roles = infer_roles(frame)
    assert {name: role.role for name, role in roles.items()} == {
        "crp": ColumnRole.NUMERIC, "score": ColumnRole.NUMERIC, "released": ColumnRole.CLOCK,
        "rhesus": ColumnRole.CATEGORICAL, "code": ColumnRole.CATEGORICAL}
    assert roles["crp"].why == "numbers; '.' read as missing (12 of 30 values)" and roles["crp"].marked
    assert "'-', '?' read as missing (12 of 30 values)" in roles["score"].why
    assert roles["released"].marked and not roles["rhesus"].marked and not roles["code"].marked
    parts = apply_roles(frame, roles)
    assert parts["crp"].iloc[[0, 2, 3]].tolist() == [1.5, 2.25, 3.0]
    assert parts["crp"].isna().sum() == 12 and parts["score"].isna().sum() == 12 and parts["crp"].dtype == np.float64
    assert parts["released"].tolist()[:1] == [13.5] and parts["released"].isna().sum() == 18
    assert BLANK.match("   ") and not MISSING_MARK.match("-1") and MISSING_MARK.match("--")


def test_a_role_saved_before_blanks_were_missing_keeps_its_blank_category():
    """A champion trained when a cell of spaces was a value learnt it as a category, and its suite holds the column
    filled: its new data keeps the blanks, where a role inferred now reads them as missing."""
    frame = pd.DataFrame({"hisp": ["Yes", "No ", "   "] * 10, "crp": ["1.5", "   ", "2"] * 10})
    roles = infer_roles(frame)
    assert all(role.blanks_empty for role in roles.values())
    assert apply_roles(frame, roles)["hisp"].isna().sum() == 10 and roles["hisp"].why == "2 values"
    assert roles["crp"].why == "numbers; '   ' read as missing (10 of 30 values)", "padded numbers were categories"
    saved = from_json({name: {k: v for k, v in asdict(role).items() if k != "blanks_empty"}
                       for name, role in roles.items()})  # as run.json held them before the field
    old = apply_roles(frame, saved)
    assert old["hisp"].tolist()[:3] == ["Yes", "No ", "   "] and old["crp"].isna().sum() == 10, "numbers: as before"


def test_a_sas_export_loads_its_marked_numbers_and_refuses_its_blank_labels(tmp_path):
    frame = make_table()
    frame["x1"] = frame["x1"].round(2).astype(str)
    frame.loc[::5, "x1"] = "."
    frame["crp"] = np.where(np.arange(len(frame)) % 4, "1.0", ".")
    frame["colour"] = frame["colour"].fillna("   ")  # padded empty cells
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = TrainConfig(data=tmp_path / "t.csv", target="label")
    check_source(tmp_path / "t.csv", "label")
    data, _ = load_dataset(config)
    assert data.features["x1"].dtype == np.float64 and data.features["x1"].isna().sum() == 12
    assert data.features["colour"].isna().sum() == 6 and "   " not in set(data.features["colour"].dropna())
    assert any(note.startswith("2 numeric columns hold values with no letter or digit (such as '.' or '?'), read "
                               "as missing: x1, crp") for note in data.notes)
    frame.loc[[3, 8], "label"] = "  "
    frame.to_csv(tmp_path / "t.csv", index=False)
    for check in (lambda: check_source(tmp_path / "t.csv", "label"), lambda: load_dataset(config)):
        with pytest.raises(DataError, match=r"label column 'label' is empty on 2 of 60 rows: rows \[3, 8\]"):
            check()


def test_column_roles_override_inference_and_an_unknown_column_is_named(tmp_path):
    messy_table().to_csv(tmp_path / "t.csv", index=False)
    config = TrainConfig(data=tmp_path / "t.csv", target="label",
                         column_roles={"visits": "categorical", "row": "numeric", "amount": "ignore"})
    data, _ = load_dataset(config)
    assert data.roles["visits"].why == "set by --column-role"
    assert "amount" not in data.features.columns and data.features["row"].dtype == np.float64
    assert data.features["visits"].dtype == object
    with pytest.raises(DataError, match=r"t.csv: --column-role names \['colour'\], which the table does not have"):
        load_dataset(TrainConfig(data=tmp_path / "t.csv", target="label", column_roles={"colour": "text"}))
    with pytest.raises(ValueError, match="column_roles"):
        TrainConfig(data=tmp_path / "t.csv", target="label", column_roles={"city": "postcode"})


def test_a_column_of_numbers_with_some_text_loads_as_the_categories_its_role_says(tmp_path):
    frame = make_table()  # Cars93's Cylinders: 3, 4, 6, 8 and one 'rotary'
    frame["cylinders"] = np.array(["4", "6", "8"], dtype=object)[np.arange(len(frame)) % 3]
    frame.loc[5, "cylinders"] = "rotary"
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.iloc[:10].to_csv(tmp_path / "test.csv", index=False)
    data, test = load_dataset(TrainConfig(data=tmp_path / "t.csv", test_data=tmp_path / "test.csv", target="label"))
    assert data.roles["cylinders"].role == ColumnRole.CATEGORICAL, "few distinct numbers and text: codes"
    assert set(data.features["cylinders"]) == {"4", "6", "8", "rotary"} and "rotary" in set(test.features["cylinders"])
    given = load_dataset(TrainConfig(data=tmp_path / "t.csv", target="label", column_roles={"cylinders": "numeric"}))
    assert given[0].features["cylinders"].isna().sum() == 1, "said to be numbers: the stray text is missing"
    frame.loc[[7, 9, 11, 13, 15, 17], "cylinders"] = "rotary"  # 7 of 60 as text: more than stray
    frame.to_csv(tmp_path / "t.csv", index=False)
    hint = r"fix or blank them, or if they are categories say so: --column-role cylinders=categorical"
    with pytest.raises(DataError, match=r"column 'cylinders' is numeric but 7 of 60 values are text .*" + hint):
        load_dataset(TrainConfig(data=tmp_path / "t.csv", target="label", column_roles={"cylinders": "numeric"}))


