"""The trust verdict in the answer's own text, for clients that show nothing else.

Why in `content`: the chat tab shows under every answer whether it was checked against the
adapter's Q&A, and a client that reads `x_assistant` can do the same. But most tools that speak
this API (Open WebUI, a phone chat app, curl) show `content` only, and there an unchecked answer
would read as confidently as a checked one: the one thing a farmer must never be shown. So, by
default, an answer that was not checked ends with a line saying so in plain words, followed by
the closest questions that do have a checked answer; and a withheld answer, whose text says "pick
one of the checked questions below", lists them below. A checked answer's text is left as it is.
A client that renders `x_assistant` itself turns this off: `x_assistant: {"notes": false}`.

What a client sends back in a later request's history is cleaned first: the note is cut from an
assistant turn, and a withheld answer's turn is dropped (as the chat tab never puts it in the
prompt), so the model is never shown either as something it said.
"""

from __future__ import annotations

from assistant.trust import is_withheld_text

NOT_CHECKED = "⚠️ Not checked — may be wrong"  # the chat tab's mark for the same verdict
CLOSE_QUESTIONS = "Close questions with a checked answer:"
MOST_SUGGESTIONS = 3  # as the chat tab's buttons


def tail(answer) -> str:
    """What follows the answer's text in `content`: "" for a checked answer."""
    suggestions = "".join(f"\n- {q}" for q in list(getattr(answer, "suggestions", None) or [])[:MOST_SUGGESTIONS])
    if getattr(answer, "withheld", False):  # its text already says why, and points at the questions "below"
        return f"\n{suggestions}" if suggestions else ""
    if getattr(answer, "checked", False) is True:  # an answer that does not say is not taken as checked
        return ""
    why = (f"{answer.adapter}'s Q&A does not cover this question" if answer.adapter else
           "the base model answered, with no Q&A to check it against")
    return f"\n\n{NOT_CHECKED}: {why}." + (f"\n\n{CLOSE_QUESTIONS}{suggestions}" if suggestions else "")


def cleaned(messages: list[dict]) -> list[dict]:
    """The conversation without what this module added to earlier answers (see the docstring).
    A conversation with a role the service refuses is left whole, so its error names the right
    message (`messages[3].role`) and not one shifted by a dropped turn."""
    if any(m.get("role") not in ("system", "user", "assistant") for m in messages):
        return messages
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] == "assistant":
            if is_withheld_text(content):
                continue
            cut = content.find(f"\n\n{NOT_CHECKED}: ")
            if cut >= 0:
                message = {**message, "content": content[:cut]}
        out.append(message)
    return out
