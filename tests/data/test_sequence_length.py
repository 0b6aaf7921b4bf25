"""Variable-length sequences: one rule, zero-pad or cut at the end to the training length, wherever they come in."""

import numpy as np
import pytest

from pipelines.config import TrainConfig
from pipelines.errors import DataError
from pipelines.load import LENGTH_RULE, fit_length, load_dataset, load_path, split_dataset, write_sequence_file
from pipelines.runs import data_notes
from pipelines.preprocess import Preprocessing, encode_features
from tests.conftest import make_sequences


def _steps(length: int, features: int = 2, start: float = 1.0) -> np.ndarray:
    return start + np.arange(length * features, dtype=np.float32).reshape(length, features)


def _npz(path, x, y):
    write_sequence_file(path, list(x), y)
    return path


@pytest.fixture
def train_and_test(tmp_path):
    """Training sequences of lengths 16–20 (training length 20); a test file with a 25-step and a 10-step one."""
    x, y = make_sequences(n=30)
    train = _npz(tmp_path / "train.npz", x, y)
    test_x = [_steps(25), _steps(10, start=-50.0), *make_sequences(n=4, seed=1, ragged=False)[0]]
    test = _npz(tmp_path / "test.npz", test_x, ["up", "down", "down", "up", "down", "up"])
    return train, test, test_x


def test_fit_length_pads_and_cuts_at_the_end_and_says_so():
    sequences = [_steps(3), _steps(5), _steps(7), _steps(2)]
    fitted, notes = fit_length(sequences, 5)
    assert fitted.shape == (4, 5, 2) and fitted.dtype == np.float32
    np.testing.assert_array_equal(fitted[0, :3], sequences[0])
    assert not fitted[0, 3:].any() and not fitted[3, 2:].any()
    np.testing.assert_array_equal(fitted[1], sequences[1])
    np.testing.assert_array_equal(fitted[2], sequences[2][:5])
    assert notes == ["2 sequences zero-padded at the end to the training length 5",
                     "1 sequences cut at the end to the training length 5"]
    assert fit_length([_steps(5)], 5)[1] == []
    assert fit_length([_steps(6)], 5, "the model's length")[1] == ["1 sequences cut at the end to the model's length 5"]
    assert "zero-pad or cut at the end" in LENGTH_RULE


def test_a_test_file_of_longer_and_shorter_sequences_is_fitted_to_the_training_length(train_and_test):
    train, test, test_x = train_and_test
    data = load_path(train, None)
    assert data.features.shape[1] == 20
    splits = split_dataset(data, load_path(test, None), test_fraction=0.2, val_fraction=0.2, seed=0)
    fitted = splits.test.features
    assert fitted.shape == (6, 20, 2)
    np.testing.assert_array_equal(fitted[0], test_x[0][:20])
    np.testing.assert_array_equal(fitted[1, :10], test_x[1])
    assert not fitted[1, 10:].any()
    assert "1 sequences cut at the end to the training length 20" in splits.test.notes
    assert "1 sequences zero-padded at the end to the training length 20" in splits.test.notes
    assert not any("to length 25" in note for note in splits.test.notes), "the test file's own padding note is gone"
    assert "test set: 1 sequences cut at the end to the training length 20" in data_notes(splits), \
        "the report says which data was cut"
    assert splits.test.lengths.tolist() == [25, 10, 20, 20, 20, 20]


def test_the_cli_path_fits_the_test_file_too(train_and_test):
    train, test, _ = train_and_test
    data, given_test = load_dataset(TrainConfig(data=train, test_data=test))
    assert given_test.features.shape == (6, data.features.shape[1], 2)
    splits = split_dataset(data, given_test, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert splits.test.features.shape == (6, 20, 2)
    assert "1 sequences cut at the end to the training length 20" in splits.test.notes


def test_a_test_file_with_another_feature_count_is_refused_in_one_line(train_and_test, tmp_path):
    train, _, _ = train_and_test
    test = _npz(tmp_path / "three.npz", [_steps(20, features=3), _steps(12, features=3)], ["up", "down"])
    for call in (lambda: split_dataset(load_path(train, None), load_path(test, None),
                                       test_fraction=0.2, val_fraction=0.2, seed=0),
                 lambda: load_dataset(TrainConfig(data=train, test_data=test))):
        with pytest.raises(DataError, match=r"three\.npz: test sequences have 3 feature\(s\) per step, "
                                            r"training sequences 2") as error:
            call()
        assert "\n" not in str(error.value)


def test_model_inputs_follow_the_rule_at_the_model_length(train_and_test):
    _, test, test_x = train_and_test
    prep = Preprocessing(kind="sequence", input_shape=[20, 2], class_names=["down", "up"], mean=[0, 0],
                         variance=[1, 1])
    x = encode_features(load_path(test, None), prep)
    assert x.shape == (6, 20, 2)
    np.testing.assert_array_equal(x[0], test_x[0][:20])
