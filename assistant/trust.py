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
from dataclasses import dataclass, field, replace

POLICIES = ("checked", "open")
POLICY_HELP = {
    "checked": "Checked only: answers only what its Q&A covers; other questions get \"no checked answer yet\" "
               "and go to the trainers. For advice people act on (doses, diseases, farming practice).",
    "open": "Open: the model answers everything; answers its Q&A does not cover are marked \"not checked — may be "
            "wrong\". For demos, fiction and general chat.",
}
# Coverage score: (the nearer of the pair's question and answer by cosine + LEXICAL x the share of the
# question's content words found in the pair) / (1 + LEXICAL). Measured on agriculture (README "Checked
# answers"): held-out paraphrases found at or above COVER_THRESHOLD 51/52 (by question cosine at 0.70:
# 42/52), farmer paraphrases 56/62 (47/62), and no out-of-scope farming question reached it (0/72).
LEXICAL = 0.2
COVER_THRESHOLD = 0.62
SUGGEST_FLOOR = 0.40  # closest questions at least this near are offered as "Did you mean ...?"
CANDIDATES = 8
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


def cover(knowledge, adapter, question: str, follow_up: str | None = None, vector=None) -> Coverage:
    """Look the question up in the adapter's own indexed pairs. `follow_up`: the last message, when
    `question` joins it to the one before; the pair must then take up what the follow-up itself adds
    ("and stone bunds?"), or it only answers the first question again. `vector`: the question's
    embedding, when the plan already computed it (one encoding per answer, not two)."""
    from assistant.asks import answers_the_ask, asks_of
    from assistant.checking import opposed
    from assistant.grounding.errors import KnowledgeError
    from assistant.grounding.names import names_agree

    if adapter is None:
        return Coverage(note="the base model has no Q&A")
    if knowledge is None:
        return Coverage(note="the Q&A index is not available")
    try:
        scope = [(adapter.name, adapter.version)]
        found = (knowledge.search(question, scope, k=CANDIDATES, answers=True) if vector is None
                 else knowledge.search_vector(vector, scope, k=CANDIDATES, answers=True))
    except KnowledgeError as exc:
        return Coverage(note=str(exc))
    # What is asked for: a follow-up's own ask ("and how far apart?"), else the joined question's
    # ("How deep for maize? And for beans?" still asks how deep).
    asked = follow_up if follow_up and asks_of(follow_up) else question
    scored = sorted((replace(m, similarity=round(coverage_score(question, m), 4)) for m in found),
                    key=lambda m: -m.similarity)
    covering = next((m for m in scored if m.similarity >= COVER_THRESHOLD and names_agree(question, m)
                     and subjects_agree(question, m, follow_up is not None) and not opposed(question, m.question)
                     and answers_the_ask(asked, m)
                     and (follow_up is None or takes_up(follow_up, m))), None)
    return Coverage(pair=covering, nearest=scored[:SUGGESTIONS + 1])


def subjects_agree(question: str, match, follow_up: bool = False) -> bool:
    """False when the question is about a crop or animal and the pair is about others: "how deep for
    beans?" is not answered by the potato pair. A pair that names none (how nodules look inside,
    how bacterial wilt is confirmed) is general and answers it for any crop; one question may name
    several ("nodules on my bean roots", "soya"), and one of them in the pair suffices. In a
    follow-up the last one named counts: in "How deep for maize? And for beans?" the farmer now
    asks about beans."""
    from assistant.checking import subjects_in, subjects_named

    named = subjects_named(question)
    about = subjects_in(f"{match.question} {match.answer}")
    if not named or not about:
        return True
    return named[-1] in about if follow_up else bool(set(named) & about)


def takes_up(follow_up: str, match) -> bool:
    """Whether the pair contains a content word of the follow-up itself; "and that other one?" has
    none, so nothing can be checked for it and the farmer is asked for the whole question."""
    from assistant.checking import content_in

    own = content_in(FOLLOW_UP.sub("", follow_up)) - {"about", "what", "how"}
    return bool(own & content_in(f"{match.question} {match.answer}"))


def coverage_score(question: str, match) -> float:
    """Cosine of the nearer of question and answer, with a lexical share: embeddings alone rate
    "which dose of X is safe" near any dose question, while a farmer's own words for the subject
    (maize, nodules, tassel) are strong evidence of the pair meant."""
    from assistant.checking import content_in

    asked = content_in(question)
    share = len(asked & content_in(f"{match.question} {match.answer}")) / len(asked) if asked else 0.0
    return (match.similarity + LEXICAL * share) / (1 + LEXICAL)


# How a withheld answer begins; a client that sends one back in its history is recognised by it.
UNSURE_WHICH = "I am not sure which question you mean, and I will not guess."
NO_CHECKED_ANSWER = "I don't have a checked answer to that yet, so I will not guess."


def no_checked_answer_text(follow_up: bool, suggestions: bool) -> str:
    pick = " or pick one of the checked questions below" if suggestions else ""
    if follow_up:
        return f"{UNSURE_WHICH} Please ask the whole question again{pick}."
    return (f"{NO_CHECKED_ANSWER} Your question has been passed to the trainers. "
            f"You can{pick.replace(' or', '')} or ask your extension officer." if suggestions else
            f"{NO_CHECKED_ANSWER} Your question has been passed to the trainers; meanwhile, please ask your "
            "extension officer.")


def is_withheld_text(text: str) -> bool:
    """Whether a turn is one of the texts above: not something the model said."""
    return str(text).lstrip().startswith((UNSURE_WHICH, NO_CHECKED_ANSWER))
