"""The thread-count choice: the faster count decodes, the other is probed now and then."""

from __future__ import annotations

import pytest

from assistant.engines.threads import MOST_STRETCH, PERIOD, PROBE, ThreadChooser, probe_period


def _counts(chooser, most=2, tokens=PERIOD * 4):
    picks = [chooser.choose(most, i) for i in range(tokens)]
    return picks.count(1), picks.count(most)


def test_unknown_counts_are_tried_first_and_one_thread_is_all_a_single_core_gets():
    chooser = ThreadChooser()
    assert chooser.choose(2, 0) == 2  # nothing measured: all the threads allowed
    chooser.record(2, 0.017)
    assert chooser.choose(2, PERIOD - 1) == 1  # then one thread, in the probe window
    assert chooser.choose(1, 5) == 1


def test_the_faster_count_decodes_and_the_other_is_probed():
    idle, shared = ThreadChooser(), ThreadChooser()
    for chooser, one, two in ((idle, 0.032, 0.017), (shared, 0.031, 0.066)):
        chooser.record(1, one)
        chooser.record(2, two)
    # each about twice as slow as the other: probed every 2 periods
    assert _counts(idle) == (2 * PROBE, 4 * PERIOD - 2 * PROBE)  # idle: two threads, one only probed
    assert _counts(shared) == (4 * PERIOD - 2 * PROBE, 2 * PROBE)  # beside a busy program: one thread


def test_a_count_about_as_fast_is_probed_every_period():
    chooser = ThreadChooser()
    chooser.record(1, 0.0135)
    chooser.record(2, 0.0130)
    assert _counts(chooser) == (4 * PROBE, 4 * (PERIOD - PROBE))


@pytest.mark.parametrize("slower, period", [(1.0, PERIOD), (1.4, PERIOD), (2.0, 2 * PERIOD), (5.2, 5 * PERIOD),
                                            (40.0, MOST_STRETCH * PERIOD), (0.5, PERIOD)])
def test_a_much_slower_count_is_probed_less_often(slower, period):
    assert probe_period(slower) == period


def test_a_change_in_load_moves_the_choice():
    chooser = ThreadChooser()
    chooser.record(1, 0.032)
    chooser.record(2, 0.017)
    for _ in range(5):  # a co-tenant starts: two threads get slow
        chooser.record(2, 0.08)
    assert chooser.choose(2, 0) == 1
