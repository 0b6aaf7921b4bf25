"""The garbage collector walks only what a run's training creates (`pipelines.search.heap`)."""

import gc

import pytest

from pipelines.search.heap import frozen_heap


class _Cycle:
    def __init__(self):
        self.me = self


def test_the_heap_is_frozen_in_the_block_its_new_cycles_still_collected_and_it_thaws_after():
    before = _Cycle()
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0, "what was tracked before the block is out of its collections"
        assert not any(obj is before for obj in gc.get_objects()), "frozen objects are not walked"
        made = _Cycle()
        alive = len([obj for obj in gc.get_objects() if isinstance(obj, _Cycle)])
        del made
        gc.collect()
        assert len([obj for obj in gc.get_objects() if isinstance(obj, _Cycle)]) == alive - 1, \
            "a reference cycle made in the block is freed by a collection in it"
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("a failed run")
    assert gc.get_freeze_count() == 0, "thawed however the block ends"
