"""Load and split: every input kind, and every kind of bad input named clearly."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.config import TrainConfig
from pipelines.errors import DataError
from pipelines.load import (
    check_source,
    load_bundled,
    load_dataset,
    load_path,
    rows_per_class_needed,
    sequences_dataset,
    split_dataset,
)
from tests.conftest import make_sequences, make_table


def test_table_keeps_raw_columns_and_string_labels(table_csv):
    data = load_path(table_csv, "label")
    assert data.kind == "table"
    assert list(data.features.columns) == ["x1", "x2", "colour"]
    assert data.class_names == ["high", "low", "mid"]
    assert data.features["x2"].isna().sum() > 0


def test_parquet_table(tmp_path):
    path = tmp_path / "t.parquet"
    make_table().to_parquet(path)
    assert len(load_path(path, "label")) == 60


def test_image_folder_one_class_per_subfolder(image_folder):
    data = load_path(image_folder, None)
    assert data.features.shape == (30, 8, 8, 1)
    assert data.class_names == ["digit_0", "digit_1", "digit_7"]


def test_images_of_mixed_sizes_and_channels_are_unified(image_folder):
    Image.new("RGB", (16, 12), (200, 10, 10)).save(image_folder / "digit_0" / "odd.png")
    data = load_path(image_folder, None)
    assert data.features.shape == (31, 8, 8, 1)
    assert any("resized to 8x8" in note for note in data.notes)
    assert any("mixed channels" in note for note in data.notes)


def test_ragged_sequences_are_padded_and_reported(sequences_npz):
    data = load_path(sequences_npz, None)
    assert data.kind == "sequence"
    assert data.features.shape == (40, 20, 2)
    assert any("padded" in note and "20" in note for note in data.notes)


def test_bundled_gunpoint_uses_its_official_test_split():
    train, test = load_bundled("gunpoint")
    assert train.features.shape == (50, 150, 1)
    assert test.features.shape == (150, 150, 1)


def test_split_is_stratified_seeded_and_disjoint(table_csv):
    data = load_path(table_csv, "label")
    a = split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=1)
    b = split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=1)
    assert a.sizes() == {"train": 38, "val": 10, "test": 12}
    assert a.test.features.index.equals(b.test.features.index)
    parts = [set(s.features.index) for s in (a.train, a.val, a.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sorted(set(a.test.labels)) == ["high", "low", "mid"]


def test_given_test_set_replaces_the_test_split(table_csv, tmp_path):
    test_path = tmp_path / "test.csv"
    make_table(n=15, seed=3).to_csv(test_path, index=False)
    splits = split_dataset(load_path(table_csv, "label"), load_path(test_path, "label"),
                           test_fraction=0.2, val_fraction=0.2, seed=0)
    assert splits.sizes()["test"] == 15
    assert splits.sizes()["train"] + splits.sizes()["val"] == 60


# Bad input: each names the problem.

def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_path(tmp_path / "nope.csv", "label")


def test_unknown_target_lists_columns(table_csv):
    with pytest.raises(DataError, match=r"no column 'kind'; columns are x1, x2, colour, label"):
        load_path(table_csv, "kind")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_path(path, "label")


def test_header_only_table(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_path(path, "label")


def test_numeric_column_with_stray_text_reads_it_as_missing_and_with_more_is_categories(tmp_path):
    frame = make_table()
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[3, "x1"] = "twelve"
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(TrainConfig(data=path, target="label"))[0]
    assert data.roles["x1"].role == "numeric" and np.isnan(data.features["x1"][3])
    assert data.features["x1"].notna().sum() == 59
    assert "column 'x1': numbers; 'twelve' read as missing (1 of 60 values)" in data.notes
    check_source(path, "label", None, {})
    frame.loc[3:12, "x1"] = "twelve"  # 10 of 60: not stray, so the column is not numbers
    frame.to_csv(path, index=False)
    assert load_dataset(TrainConfig(data=path, target="label"))[0].roles["x1"].role == "categorical"
    # given the numeric role, before any work (the CLI, before Prefect's server: openintro's birds waited 31 s for it)
    with pytest.raises(DataError, match=r"column 'x1' is numeric but 10 of 60 values are text \(e.g. 'twelve'\)"):
        check_source(path, "label", None, {"x1": "numeric"})
    with pytest.raises(DataError, match=r"column 'x1' is numeric but 10 of 60 values are text"):
        load_path(path, "label", given_roles={"x1": "numeric"})
    check_source(path, "label", None, {})


def test_target_with_one_class(tmp_path):
    frame = make_table().assign(label="same")
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"one class \('same'\)"):
        split_dataset(load_path(path, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)


def test_a_class_too_small_to_split_is_left_out_when_its_rows_are_few_and_refused_when_many(tmp_path):
    frame = make_table()
    frame.loc[0, "label"] = "rare"
    path, test = tmp_path / "t.csv", tmp_path / "test.csv"
    frame.to_csv(path, index=False)
    splits = split_dataset(load_path(path, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert splits.class_names == ["high", "low", "mid"] and sum(splits.sizes().values()) == 59
    assert ("classes {'rare': 1} have fewer than 3 rows, too few for train, validation and test: their 1 rows (1.7%) "
            "were left out, and the model does not know these classes") in splits.train.notes
    check_source(path, "label", rows_per_class_needed(test_given=False))  # before any work: no refusal either
    make_table(12, seed=1).assign(label=["rare"] * 2 + ["low"] * 10).to_csv(test, index=False)
    given = split_dataset(load_path(path, "label"), load_path(test, "label", training=False), test_fraction=0.2,
                          val_fraction=0.2, seed=0)
    assert len(given.test) == 10 and given.train.notes[-1].endswith("; the test set's 2 rows of them too")
    frame.loc[[0, 1], "label"], frame.loc[[2, 3], "label"] = "rare", "odd"  # 4 rows of 60: more than 5%
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"classes \{'rare': 2, 'odd': 2\} have fewer than 3 rows"):
        split_dataset(load_path(path, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    # before any work (the CLI, before Prefect's server: modeldata's breaches waited 35 s for it), saying what to do
    with pytest.raises(DataError, match=r"\{'rare': 2, 'odd': 2\} have fewer than 3 rows; .*: relabel or drop their"):
        check_source(path, "label", rows_per_class_needed(test_given=False))
    check_source(path, "label")  # a test file's classes may be small


def test_corrupt_image_is_named(image_folder):
    bad = image_folder / "digit_1" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png cannot be read"):
        load_path(image_folder, None)


def test_non_image_file_is_named(image_folder):
    (image_folder / "digit_7" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt is not an image"):
        load_path(image_folder, None)


def test_every_bad_file_of_a_folder_is_counted_and_the_first_five_named(image_folder):
    for i in range(7):
        (image_folder / "digit_1" / f"broken{i}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"7 bad file\(s\): .*broken0.png cannot be read.*; and 2 more$") as caught:
        load_path(image_folder, None)
    assert str(caught.value).count("cannot be read") == 5


def test_any_format_pillow_reads_and_nested_folders_are_images_of_their_class(image_folder):
    source = next((image_folder / "digit_1").glob("*.png"))
    with Image.open(source) as image:
        image.save(image_folder / "digit_1" / "extra.bmp")
        (image_folder / "digit_1" / "scans").mkdir()
        image.save(image_folder / "digit_1" / "scans" / "extra.webp")
    before = load_path(image_folder, None)
    assert list(before.labels).count("digit_1") >= 3
    assert any("1 images in subfolders" in note for note in before.notes)


def test_a_semicolon_csv_is_read_by_sniffing_its_separator(tmp_path):
    make_table().to_csv(tmp_path / "semi.csv", sep=";", index=False)
    data = load_path(tmp_path / "semi.csv", "label")
    assert list(data.features.columns) == ["x1", "x2", "colour"] and len(data) == 60
    make_table().to_csv(tmp_path / "tabs.tsv", sep="\t", index=False)  # a .tsv was an unknown file type
    check_source(tmp_path / "tabs.tsv", "label")
    assert load_path(tmp_path / "tabs.tsv", "label").features.equals(data.features)


def test_sequences_with_mismatched_feature_counts(tmp_path):
    x, y = make_sequences(n=6)
    x[4] = np.zeros((18, 3))
    path = tmp_path / "s.npz"
    packed = np.empty(len(x), dtype=object)
    packed[:] = x
    np.savez(path, x=packed, y=y)  # the old ragged form: object arrays are refused before anything else
    with pytest.raises(DataError, match=r"array 'x' holds Python objects"):
        load_path(path, None)
    mixed = [np.asarray(s, dtype=np.float32).reshape(len(s), -1) for s in x]
    np.savez(path, x=np.concatenate([s.ravel() for s in mixed]), lengths=[len(s) for s in mixed], y=y)
    with pytest.raises(DataError, match=r"lengths, x must hold every sequence's steps one after another"):
        load_path(path, None)
    with pytest.raises(DataError, match=r"most have 2, but sequences \[4\] have \[3\]"):
        sequences_dataset(x, y, "in memory")


def test_npz_without_labels(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x=np.zeros((4, 5, 1)))
    with pytest.raises(DataError, match=r"missing array\(s\) \['y'\]"):
        load_path(path, None)


def test_unseen_test_label(table_csv, tmp_path):
    test = make_table(n=9).assign(label="other")
    path = tmp_path / "test.csv"
    test.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"test labels \['other'\] never appear"):
        split_dataset(load_path(table_csv, "label"), load_path(path, "label"),
                      test_fraction=0.2, val_fraction=0.2, seed=0)


def test_a_continuous_target_is_refused_in_one_line_saying_what_to_do(tmp_path):
    rng = np.random.default_rng(0)
    prices = np.repeat(rng.uniform(10, 500, 300).round(2), 5)
    frame = pd.DataFrame({"x": rng.normal(size=1500), "price": prices})
    frame.to_csv(tmp_path / "prices.csv", index=False)
    with pytest.raises(DataError, match=r"label column 'price' looks continuous \(300 distinct numbers in 1500 rows\)"
                                        r".*bin it into classes"):
        load_path(tmp_path / "prices.csv", "price")
    classes = pd.DataFrame({"x": rng.normal(size=1500), "digit": np.arange(1500) % 10, "grade": (np.arange(1500) % 3)
                            * 1.0})
    classes.to_csv(tmp_path / "classes.csv", index=False)
    assert len(load_path(tmp_path / "classes.csv", "digit").class_names) == 10, "integer class codes stay classes"
    assert load_path(tmp_path / "classes.csv", "grade").class_names == ["0", "1", "2"], "so do whole floats"


def test_many_too_small_classes_are_named_up_to_five_then_counted(tmp_path):
    frame = make_table(60)
    frame.loc[:39, "label"] = [f"rare{i}" for i in range(40)]
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"and 35 more have fewer than 3 rows") as caught:
        split_dataset(load_path(tmp_path / "t.csv", "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert len(str(caught.value)) - len(str(tmp_path / "t.csv")) < 200


def test_nan_in_sequences_is_refused_with_the_files_sample_numbers(tmp_path):
    x, y = make_sequences(40, ragged=False)
    x = np.asarray(x, dtype=np.float32)
    for i in (3, 17, 18, 19, 20, 21, 30):
        x[i, 2, 0] = np.nan
    np.savez(tmp_path / "s.npz", x=x, y=y)
    with pytest.raises(DataError, match=r"7 of 40 sequences hold NaN or inf: samples \[3, 17, 18, 19, 20\] and 2 "
                                        r"more \(numbered from 0, as in the file\)"):
        load_path(tmp_path / "s.npz", None)


def test_empty_labels_are_counted_and_the_first_rows_named(tmp_path):
    frame = make_table(60)
    frame["label"] = frame["label"].astype(object)
    frame.loc[[3, 10, 11, 20, 30, 41, 50], "label"] = None
    frame.to_csv(tmp_path / "unlabelled.csv", index=False)
    for check in (load_path, check_source):  # check_source: before the CLI starts Prefect's server
        with pytest.raises(DataError, match=r"label column 'label' is empty on 7 of 60 rows: rows \[3, 10, 11, 20, "
                                            r"30\] and 2 more \(numbered from 0 below the header\); label or drop them"):
            check(tmp_path / "unlabelled.csv", "label")


def test_a_csv_with_decimal_commas_reads_its_numbers_as_numbers(tmp_path):
    frame = make_table()  # x1, x2 (some missing), colour, label
    frame.to_csv(tmp_path / "eu.csv", sep=";", decimal=",", index=False)  # Excel's CSV in much of Europe
    assert "," in (tmp_path / "eu.csv").read_text().splitlines()[1], "the file holds decimal commas"
    data = load_path(tmp_path / "eu.csv", "label")
    np.testing.assert_allclose(data.features["x1"], frame["x1"])
    np.testing.assert_allclose(data.features["x2"], frame["x2"])  # missing values stay missing
    assert data.notes == ["numbers with a decimal comma (as 1,5) were read as numbers: the file separates columns "
                          "with ';'"]
    frame.to_csv(tmp_path / "points.csv", sep=";", index=False)  # the same separator, decimal points
    assert load_path(tmp_path / "points.csv", "label").notes == []
    frame.assign(colour="4,5").to_csv(tmp_path / "text.csv", index=False)  # a comma-separated file: quoted "4,5"
    assert load_path(tmp_path / "text.csv", "label").features["colour"].iloc[0] == "4,5"


def test_a_csv_that_is_not_utf8_names_the_line_and_the_fix_before_any_work(tmp_path):
    frame = make_table(3000)  # the bad byte far past the first chunk the header is read from
    frame.loc[2500, "colour"] = "bleu fonc\u00e9"
    frame.to_csv(tmp_path / "windows.csv", index=False, encoding="cp1252")
    for check in (check_source, load_path):
        with pytest.raises(DataError, match=r"windows.csv: not UTF-8 text \(byte 0xe9 on line 2502, as a file saved "
                                            r"as Windows-1252 or Latin-1 has\); save it as UTF-8 \(in Excel: CSV UTF-8\)"):
            check(tmp_path / "windows.csv", "label")


def test_labels_written_alike_are_named_as_the_same_class_in_other_spaces_or_capitals(tmp_path):
    frame = make_table(90)
    frame.loc[[3, 6], "label"] = "low "  # a stray space
    frame.loc[[9], "label"] = "Low"
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_path(tmp_path / "t.csv", "label")
    assert "labels written alike are different classes here ('low ' is 'low', 'Low' is 'low' but for spaces or " \
           "capitals)" in data.notes
    with pytest.raises(DataError, match=r"classes \{'Low': 1, 'low ': 2\} have fewer than 3 rows; each class needs "
                                        r"rows for train, validation and test: fix the labels \('Low' is 'low', "
                                        r"'low ' is 'low'\), or"):
        split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=0)


def _aeon_file(name: str, part: str = "TRAIN"):
    import aeon
    from pathlib import Path

    return Path(aeon.__file__).parent / "datasets" / "data" / name / f"{name}_{part}.ts"


@pytest.mark.parametrize("name, shape", [("GunPoint", (50, 150, 1)), ("BasicMotions", (40, 100, 6))])
def test_a_ts_file_loads_as_the_ucr_and_uea_archives_ship_it(name, shape):
    """The time-series classification archives' own format (aeon reads it): one channel or six, string labels."""
    check_source(_aeon_file(name), None)
    data = load_path(_aeon_file(name), None)
    assert data.kind == "sequence" and data.features.shape == shape and len(set(data.labels)) >= 2
    if name == "GunPoint":  # the same series as the bundled demo's training split, channel last
        assert np.allclose(data.features, load_bundled("gunpoint")[0].features, atol=1e-6)
        assert sorted(set(data.labels)) == ["1", "2"]


def test_a_ts_file_of_sequences_of_different_lengths_is_padded():
    data = load_path(_aeon_file("JapaneseVowels"), None)  # 270 utterances of 7 to 26 steps, 12 coefficients
    assert data.features.shape == (270, int(data.lengths.max()), 12) and data.lengths.min() < data.lengths.max()
    assert any("padded" in note for note in data.notes)


@pytest.mark.parametrize("body, message", [
    ("@classLabel false\n@data\n1,2,3\n2,3,4\n", "no class labels"),
    ("@classLabel true a b\n@data\n1,2,x:a\n2,3,4:b\n", "cannot read it as a .ts file"),
    ("@classLabel true a b\n", "no cases after @data"),
    ("@classLabel true a b\n@data\n1,?,3:a\n2,3,4:b\n1,2,2:a\n", r"1 of 3 sequences hold NaN or inf: samples \[0\]"),
])
def test_a_faulty_ts_file_is_refused_in_one_line_before_any_work(tmp_path, body, message):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName bad\n@univariate true\n" + body)
    with pytest.raises(DataError, match=message):
        check_source(path, None)
        load_path(path, None)  # what the early check leaves to the load: values it cannot know before reading them


def test_a_sql_dumps_null_marker_is_read_as_missing(tmp_path):
    """MySQL's and PostgreSQL's dumps write a missing value as \\N (Ecdat's HHSCyberSecurityBreaches: 892 of 1,101
    descriptions), which pandas reads as text: a column of numbers became text, and free text a category."""
    words = "a laptop holding the records of some patients was stolen from a car"
    frame = make_table(60).assign(note=[f"{words} {i}" if i % 3 else "\\N" for i in range(60)])
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[[2, 5], "x1"] = "\\N"
    frame.to_csv(tmp_path / "t.csv", index=False)
    from pipelines.columns import infer_roles

    data = load_path(tmp_path / "t.csv", "label")
    roles = infer_roles(data.features)
    assert roles["x1"].role == "numeric" and data.features["x1"].isna().sum() == 2
    assert roles["note"].role == "text" and data.features["note"].isna().sum() == 20
