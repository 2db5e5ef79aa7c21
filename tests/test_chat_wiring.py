"""The chat tab's adapter list: opening it refreshes the choices and never the choice itself.

The two-pages browser test failed 1 run in 4 because of this: the list's focus event answered with
the value it had been sent (the choice *before* the user picked), the reply came after the pick,
and the chat silently went back to the bare base (its answer labelled "base model").
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from ui import app


def _assistant(names):
    adapters = [SimpleNamespace(name=n, version=1, usable=True, problem="") for n in names]
    return SimpleNamespace(adapters=lambda: adapters, sync_knowledge=lambda: None)


def test_opening_the_list_updates_choices_only():
    dropdown, note = app._relisted(_assistant(["alpha", "beta"]))
    sent = dropdown.constructor_args
    assert "value" not in sent  # a late reply cannot undo the user's pick
    assert [v for _, v in sent["choices"]][-2:] == ["alpha", "beta"]
    assert note == ""


def test_uploaded_names_and_problems_are_shown_as_text(tmp_path):
    """A file name or an adapter's problem is text: no link, no bold, no HTML reaches the page."""
    from assistant.data import load_qa_file
    from ui.chat import unusable_note
    from ui.upload_check import describe_report

    path = tmp_path / "[click](http:__e.vil)_<b>x.csv"
    path.write_text("question,answer\nWhat is sown in May?,Maize is sown in May.\n")
    report = describe_report(load_qa_file(path))
    broken = unusable_note(SimpleNamespace(adapters=lambda: [
        SimpleNamespace(name="x_y", usable=False, problem="see [link](http://e.vil) <img src=x>")]))
    for shown in (report, broken):
        assert not re.search(r"(?<!\\)\[", shown), shown  # an unescaped [ could open a link
        assert "<b>" not in shown and "<img" not in shown, shown


@pytest.mark.parametrize("policy, scores", [
    # checked only: every answer is given with its pair in the prompt, so that score leads; alone comes after
    ("checked", "held-out recall with its pair, as it answers **98%** · alone: recall **40%** · held-out recall "
                "**15%** · retention **97%**"),
    ("open", "recall **40%** · held-out recall **15%** · retention **97%**"),
])
def test_the_adapter_card_leads_with_the_score_of_the_way_it_answers(policy, scores):
    from ui.chat import adapter_card

    after = {"recall": 0.40, "heldout_recall": 0.15, "heldout_recall_right_pair": 0.98, "retention": 0.97}
    adapter = SimpleNamespace(name="farm", version=2, source="trained", answer_policy=policy,
                              manifest={"report_card": {"after": after}})
    card = adapter_card(SimpleNamespace(registry=SimpleNamespace(get=lambda name: adapter)), "farm")
    assert card.split("\n\n")[-1] == "Report card: " + scores
