"""The trust note in an API answer's content (api/notes.py): which answers carry it, what it says,
and that a note or a withheld answer sent back in the history never reaches the prompt."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from api import notes, schemas
from api.errors import ApiError
from assistant.trust import no_checked_answer_text


def _answer(checked=False, withheld=False, suggestions=(), adapter="agriculture"):
    return SimpleNamespace(checked=checked, withheld=withheld, suggestions=list(suggestions), adapter=adapter)


CLOSE = ["When should maize be planted?", "How deep should maize be sown?", "How far apart are maize rows?",
         "What is maize streak?"]

TAILS = [  # (what, answer, the exact tail)
    ("checked: nothing added", _answer(checked=True), ""),
    ("checked, with suggestions left over: nothing added", _answer(checked=True, suggestions=CLOSE), ""),
    ("not checked, an adapter", _answer(),
     "\n\n⚠️ Not checked — may be wrong: agriculture's Q&A does not cover this question."),
    ("not checked, the bare base", _answer(adapter=None),
     "\n\n⚠️ Not checked — may be wrong: the base model answered, with no Q&A to check it against."),
    ("not checked, with the closest checked questions (three, as the chat tab's buttons)",
     _answer(suggestions=CLOSE),
     "\n\n⚠️ Not checked — may be wrong: agriculture's Q&A does not cover this question.\n\n"
     "Close questions with a checked answer:\n- When should maize be planted?\n- How deep should maize be sown?\n"
     "- How far apart are maize rows?"),
    ("withheld: the questions its text points 'below' at", _answer(withheld=True, suggestions=CLOSE[:2]),
     "\n\n- When should maize be planted?\n- How deep should maize be sown?"),
    ("withheld, nothing to suggest: its text says it all", _answer(withheld=True), ""),
    ("an answer that does not say whether it was checked is not taken as checked",
     SimpleNamespace(adapter="alpha"), "\n\n⚠️ Not checked — may be wrong: alpha's Q&A does not cover this question."),
]


@pytest.mark.parametrize("answer,expected", [t[1:] for t in TAILS], ids=[t[0] for t in TAILS])
def test_what_follows_an_answer_in_its_content(answer, expected):
    assert notes.tail(answer) == expected


def _said(content):
    return {"role": "assistant", "content": content}


def _asked(content):
    return {"role": "user", "content": content}


NOTE = notes.tail(_answer(suggestions=CLOSE))
WITHHELD = no_checked_answer_text(False, True) + notes.tail(_answer(withheld=True, suggestions=CLOSE))
UNSURE = no_checked_answer_text(True, False)

HISTORIES = [  # (what, conversation sent, conversation the service gets)
    ("an earlier answer's note is cut", [_asked("a?"), _said("Plant in May." + NOTE), _asked("b?")],
     [_asked("a?"), _said("Plant in May."), _asked("b?")]),
    ("a withheld turn is dropped, as the chat tab never keeps it",
     [_asked("a?"), _said(WITHHELD), _asked("b?")], [_asked("a?"), _asked("b?")]),
    ("an 'I am not sure which question you mean' turn is dropped",
     [_asked("a?"), _said("Plant in May."), _asked("and that?"), _said(UNSURE), _asked("b?")],
     [_asked("a?"), _said("Plant in May."), _asked("and that?"), _asked("b?")]),
    ("a user who quotes the note keeps their words",
     [_asked("you said" + NOTE + " why?")], [_asked("you said" + NOTE + " why?")]),
    ("an answer without a note is left as it is", [_asked("a?"), _said("Plant in May.\n\nIn rows."), _asked("b?")],
     [_asked("a?"), _said("Plant in May.\n\nIn rows."), _asked("b?")]),
    ("an unknown role leaves all as it is, so the service's error names the right message",
     [_asked("a?"), _said(WITHHELD), {"role": "wizard", "content": "x"}, _asked("b?")],
     [_asked("a?"), _said(WITHHELD), {"role": "wizard", "content": "x"}, _asked("b?")]),
]


@pytest.mark.parametrize("sent,kept", [h[1:] for h in HISTORIES], ids=[h[0] for h in HISTORIES])
def test_what_a_client_sends_back_is_cleaned_before_the_prompt(sent, kept):
    assert notes.cleaned(sent) == kept


def _chat(**fields):
    return {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_the_note_is_on_unless_the_client_turns_it_off():
    assert schemas.parse_chat_request(_chat()).notes is True
    assert schemas.parse_chat_request(_chat(x_assistant={"notes": False})).notes is False
    with pytest.raises(ApiError) as caught:
        schemas.parse_chat_request(_chat(x_assistant={"notes": "no"}))
    assert (caught.value.status, caught.value.param) == (400, "x_assistant.notes")
