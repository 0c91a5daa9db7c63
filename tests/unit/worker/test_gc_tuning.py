import gc

import pytest

from stream_app.worker.gc_tuning import collector_paused, collector_running


@pytest.fixture(autouse=True)
def _restore_collector():
    was = gc.isenabled()
    yield
    gc.enable() if was else gc.disable()


def test_paused_turns_the_collector_off_inside_and_on_after_even_on_error():
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        with collector_running():
            assert gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError("chunk failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_running_outside_a_pause_changes_nothing():
    gc.enable()
    with collector_running():
        assert gc.isenabled()
    assert gc.isenabled()
