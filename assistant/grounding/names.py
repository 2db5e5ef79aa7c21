"""Names in a question (places, things), and whether a matched Q&A pair names the same ones.

Embeddings rate questions about different places as near ("capital of Austria" / "of Australia");
these checks keep such a pair out of the prompt.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.grounding.index import Match

# Names in a question: capitalised words (runs of them), not question words.
NAME_PATTERN = re.compile(r"\b[A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})*\b")
NOT_NAMES = {"What", "Which", "How", "Why", "When", "Where", "Who", "Whom", "Whose", "Name", "Is", "Are", "Does",
             "Do", "Can", "Should", "The", "In", "On", "For", "If", "Give", "Tell", "List", "Please", "During"}


def names_in(text: str) -> list[str]:
    return [m.group(0) for m in NAME_PATTERN.finditer(text) if m.group(0) not in NOT_NAMES]


def _stem(word: str) -> str:
    """'Italian' and 'Italy', 'Kenyan' and 'Kenya' -> one stem; 'Austria' and 'Australia' stay apart."""
    word = word.lower()
    for suffix in ("ian", "ean", "ese", "ish", "an"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word.rstrip("aeiouy") or word


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[A-Za-z]{3,}", text)}


def names_agree(question: str, match: Match) -> bool:
    """False when the question and the matched pair's question each name something the other does not.

    Embeddings rate "What is the capital of Austria?" close to "...of Australia?", and a fact about
    maize in Kenya is not one about maize in Ethiopia; grounding on either would mislead. A pair
    that names nothing the question lacks ("How many continents are there?" for "...on Earth?"),
    or that mentions the question's names in its answer, still agrees.
    """
    pair_text, question_text = _stems(f"{match.question} {match.answer}"), _stems(question)
    asked = [n for n in names_in(question) if not {_stem(w) for w in n.split()} <= pair_text]
    other = [n for n in names_in(match.question) if not {_stem(w) for w in n.split()} <= question_text]
    return not (asked and other)
