"""The int8 calibration feed: every sample once in a shuffled order, or as many as its time bound allows."""

import time

import numpy as np

from pipelines.export.calibration import CALIBRATION_SECONDS, MIN_CALIBRATION_SAMPLES, Calibration


def _fed(calibration: Calibration, cast=lambda sample: sample) -> list[int]:
    return [int(batch[0][0, 0]) for batch in calibration.feed(cast)()]


def test_a_fast_feed_gives_every_sample_once_as_a_batch_of_one_in_a_shuffled_order():
    samples = np.arange(120, dtype=np.float32).reshape(60, 2)  # row i starts with 2 i
    calibration = Calibration(samples)
    batch = next(calibration.feed(lambda sample: sample)())
    assert batch[0].shape == (1, 2)
    fed = _fed(calibration)
    assert sorted(fed) == list(range(0, 120, 2)) and calibration.used == 60
    assert fed != sorted(fed), "shuffled: a time-bounded prefix must not be the first training rows (one class)"
    assert _fed(Calibration(samples)) == fed, "the order is fixed, so a re-export calibrates the same way"


def test_a_slow_feed_stops_at_its_time_bound_but_not_before_its_floor():
    samples = np.arange(200, dtype=np.float32).reshape(200, 1)

    def slow(sample):
        time.sleep(0.01)
        return sample

    bounded = Calibration(samples, seconds=0.2, least=3)
    fed = _fed(bounded, slow)
    assert len(fed) == bounded.used and 3 <= bounded.used <= 30, bounded.used  # about 20 at 10 ms a sample
    floor = Calibration(samples, seconds=0.0, least=7)
    assert len(_fed(floor, slow)) == floor.used == 7, "the floor is fed whatever it costs"
    assert _fed(floor) == _fed(Calibration(samples))[:7], "a bounded feed is a prefix of the full one"
    _fed(floor)
    assert floor.used == 7, "each pass counts afresh"


def test_the_defaults_feed_a_few_hundred_cheap_samples_whole():
    calibration = Calibration(np.zeros((200, 4), np.float32))
    assert (calibration.seconds, calibration.least) == (CALIBRATION_SECONDS, MIN_CALIBRATION_SAMPLES)
    assert len(_fed(calibration)) == calibration.used == 200
