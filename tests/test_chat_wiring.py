"""The chat tab's adapter list: opening it refreshes the choices and never the choice itself.

The two-pages browser test failed 1 run in 4 because of this: the list's focus event answered with
the value it had been sent (the choice *before* the user picked), the reply came after the pick,
and the chat silently went back to the bare base (its answer labelled "base model").
"""

from __future__ import annotations

from types import SimpleNamespace

from ui import app


def _assistant(names):
    adapters = [SimpleNamespace(name=n, version=1, usable=True, problem="") for n in names]
    return SimpleNamespace(adapters=lambda: adapters, knowledge=None)


def test_opening_the_list_updates_choices_only():
    dropdown, note = app._relisted(_assistant(["alpha", "beta"]))
    sent = dropdown.constructor_args
    assert "value" not in sent  # a late reply cannot undo the user's pick
    assert [v for _, v in sent["choices"]][-2:] == ["alpha", "beta"]
    assert note == ""
