"""Batch-1 latency timing: bounded in time for slow models, in calls for fast ones."""

import time

from pipelines.export.tflite import measure_latency


def test_a_slow_call_is_timed_until_the_bound_but_at_least_five_times():
    latency = measure_latency(lambda: time.sleep(0.05), runs=100, warmup=1, max_seconds=0.2)
    assert latency.runs == 5, "0.25 s after five calls: past the bound, and five is the floor"
    assert 45 <= latency.median_ms <= latency.p95_ms < 200


def test_a_fast_call_is_timed_as_many_times_as_asked():
    assert measure_latency(lambda: None, runs=20, warmup=2, max_seconds=10).runs == 20
