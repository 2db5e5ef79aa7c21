"""Checked or not checked: an adapter's answer policy, what its Q&A covers, what a farmer is told.

Every answer from an adapter is looked up in that adapter's own Q&A (the knowledge index) before
it is generated:
- a *covering* pair (similarity >= COVER_THRESHOLD and naming the same things) means the answer
  can be checked: it is decoded in full, compared with the pair (assistant.checking), and shown
  as **checked** in the model's words when they agree, or as the pair's own answer when they do
  not (a checked answer never contradicts the pair it shows);
- no covering pair: under the *checked only* policy nothing is generated; the farmer is told
  there is no checked answer yet, offered the closest checked questions, and the question is
  recorded for the trainers. Under the *open* policy the model's answer is shown, marked
  **not checked — may be wrong**.
The policy is per adapter (`answer_policy` in its manifest; the registry applies changes made
after training); the bare base has no Q&A and is always open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

POLICIES = ("checked", "open")
POLICY_HELP = {
    "checked": "Checked only: answers only what its Q&A covers; other questions get \"no checked answer yet\" "
               "and go to the trainers. For advice people act on (doses, diseases, farming practice).",
    "open": "Open: the model answers everything; answers its Q&A does not cover are marked \"not checked — may be "
            "wrong\". For demos, fiction and general chat.",
}
COVER_THRESHOLD = 0.70  # as grounding (grounding.plan.GROUND_THRESHOLD): paraphrases sit at 0.82-0.97
SUGGEST_FLOOR = 0.40  # closest questions at least this near are offered as "Did you mean ...?"
SUGGESTIONS = 3
FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|also|same for|and for|what of|and in|and if|but)\b", re.I)


def policy_of(adapter) -> str:
    if adapter is None:
        return "open"
    policy = adapter.manifest.get("answer_policy")
    return policy if policy in POLICIES else "open"


def validate_policy(policy: str) -> str:
    policy = str(policy or "").strip().lower()
    if policy not in POLICIES:
        raise ValueError(f"unknown answer policy {policy[:40]!r} (choose checked or open)")
    return policy


def retrieval_question(messages: list[dict]) -> str:
    """The question to look up: the last one, joined to the one before when it only makes sense with
    it ("And for maize?", "what about the dry season?")."""
    asked = [str(m.get("content") or "").strip() for m in messages if m.get("role") == "user"]
    last = asked[-1] if asked else ""
    if len(asked) > 1 and (FOLLOW_UP.match(last) or len(last.split()) <= 2):
        return f"{asked[-2]} {last}"
    return last


def is_follow_up(messages: list[dict]) -> bool:
    return retrieval_question(messages) != next((str(m.get("content") or "").strip() for m in reversed(messages)
                                                 if m.get("role") == "user"), "")


@dataclass
class Coverage:
    """What the answering adapter's Q&A holds for one question."""

    pair: object | None = None  # grounding.Match that covers the question, or None
    nearest: list = field(default_factory=list)  # the closest pairs, best first
    note: str = ""  # why nothing could be looked up, when it could not

    @property
    def suggestions(self) -> list[str]:
        """Closest checked questions to offer when the question itself is not covered."""
        if self.pair is not None:
            return []
        seen, out = set(), []
        for match in self.nearest:
            if match.similarity >= SUGGEST_FLOOR and match.question not in seen:
                seen.add(match.question)
                out.append(match.question)
        return out[:SUGGESTIONS]


def cover(knowledge, adapter, question: str) -> Coverage:
    """Look the question up in the adapter's own indexed pairs."""
    from assistant.grounding.errors import KnowledgeError
    from assistant.grounding.names import names_agree

    if adapter is None:
        return Coverage(note="the base model has no Q&A")
    if knowledge is None:
        return Coverage(note="the Q&A index is not available")
    try:
        found = knowledge.search(question, [(adapter.name, adapter.version)], k=SUGGESTIONS + 1)
    except KnowledgeError as exc:
        return Coverage(note=str(exc))
    covering = next((m for m in found if m.similarity >= COVER_THRESHOLD and names_agree(question, m)), None)
    return Coverage(pair=covering, nearest=found)


def no_checked_answer_text(follow_up: bool) -> str:
    if follow_up:
        return ("I am not sure which question you mean, and I will not guess. Please ask the whole question "
                "again, or pick one of the checked questions below.")
    return ("I don't have a checked answer to that yet, so I will not guess. Your question has been passed to the "
            "trainers. You can pick one of the checked questions below, or ask your extension officer.")
