"""Question forms for the training pairs: more wordings of each uploaded fact, made by rules, offline.

Why: a fact fine-tuned in one wording is recalled in that wording (the shipped agriculture
adapter: 97% on its training questions, 33% on held-out paraphrases), while facts uploaded in
four wordings each were recalled in new ones (12 of 12 on a small file). So each fact is given
more wordings before training. Rules and templates, not a model: nothing to download, seconds on
a CPU, and the same forms for the same seed.

What a form may change, and what it never does:
- only the question: the answer is the uploaded one, word for word (it is what is scored,
  grounded and served, and a restated answer could lose a fact);
- numbers, units, capitalised names and the pair's keywords are kept as written: words are
  swapped only when lowercase and not a keyword, and every form is checked (`keeps_facts`);
- forms are built from the training records alone (callers pass `report.train`, never the
  report), so a held-out row can never shape one;
- a fact uploaded in several wordings (same answer) gets fewer forms: `count + 1` wordings in
  all, so a file like xylandia's, five wordings a fact, gets none.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from assistant.data.report import Record, question_key

PREVIEW_ROWS = 2000  # the validation report counts forms exactly up to this many training rows
FILE = "augmented.jsonl"  # beside the adapter's dataset file: the generated rows, marked as such

# One word for another; only lowercase words are swapped, so names are never touched. Spelling
# variants are here too: users write both.
SYNONYMS = {
    "germinate": "sprout", "sprout": "germinate", "reliably": "dependably", "minimum": "lowest",
    "maximum": "highest", "usually": "normally", "typically": "usually", "commonly": "usually",
    "common": "typical", "main": "principal", "mainly": "chiefly", "mostly": "mainly", "prefer": "like",
    "valued": "prized", "causes": "leads to", "prevent": "stop", "prevents": "stops", "reduce": "cut",
    "reduces": "cuts", "increase": "raise", "increases": "raises", "need": "require", "needs": "requires",
    "grown": "cultivated", "grow": "cultivate", "growing": "cultivating", "sown": "planted", "sow": "plant",
    "farmers": "growers", "farmer": "grower", "best": "ideal", "ideal": "best", "suitable": "appropriate",
    "damage": "harm", "symptoms": "signs", "dominates": "predominates", "method": "technique",
    "technique": "method", "advantage": "benefit", "benefits": "advantages", "problem": "issue",
    "large": "big", "big": "large", "rapidly": "quickly", "often": "frequently", "frequently": "often",
    "kind": "type", "type": "kind", "types": "kinds", "amount": "quantity", "maize": "corn", "corn": "maize",
    "fertiliser": "fertilizer", "fertilizer": "fertiliser", "colour": "color", "color": "colour",
    "ploughing": "plowing", "plough": "plow", "city": "town", "called": "named", "named": "called",
}
# Openings rewritten as another opening of the same question.
OPENINGS = [(r"Which\b", "What"), (r"What\b(?= \w+ (?:is|are|do|does|can)\b)", "Which"), (r"Why\b", "For what reason"),
            (r"How (?=(?:is|are|do|does|can|should)\b)", "In what way "), (r"How many\b", "What number of"),
            (r"How much\b", "What amount of"), (r"How deep\b", "At what depth"), (r"How often\b", "How frequently"),
            (r"What is\b", "What's"), (r"What causes\b", "What is the cause of"), (r"When\b", "At what point")]
FRAMES = ("Quick question: {q}", "I'd like to know: {q}", "Can you tell me this: {q}")
# Words a question starts with that are not names (the first word is capitalised either way).
FUNCTION_WORDS = {"what", "which", "who", "whose", "whom", "why", "how", "when", "where", "is", "are", "do", "does",
                  "can", "could", "should", "would", "will", "name", "tell", "list", "in", "at", "on", "for", "above",
                  "below", "during", "after", "before", "explain", "describe", "give", "the", "a", "an", "what's"}
STOPWORDS = (FUNCTION_WORDS - {"name"}) | {"of", "to", "and", "or", "be", "it", "its", "that", "this", "by", "with", "as", "from",
                              "what's", "me", "i", "you", "meant", "reason", "way", "my", "your", "there", "has", "have", "was", "were", "did"}
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_UNITS = r"°\s?[CF]|%|(?:mg|kg|g|t|ha|acres?|mm|cm|km|m|ml|l|days?|weeks?|months?|years?|hours?)(?:/\w+)?\b"
_NUMBER = re.compile(rf"\d+(?:[.,]\d+)*(?:\w*)(?:\s?(?:{_UNITS}))?")  # "10°C", "75 cm", "1930s", "18th"


@dataclass
class Form:
    """A generated wording of a training question, with the pair's answer as it was uploaded."""
    question: str
    answer: str
    keywords: list[str]
    from_row: int  # the training row it was made from
    rules: str  # which rules made it, e.g. "opening+synonyms"

    def to_row(self) -> dict:
        return {"question": self.question, "answer": self.answer, "keywords": self.keywords, "split": "train",
                "generated": "augment", "rules": self.rules, "from_row": self.from_row}


def question_forms(train: list[Record], count: int, seed: int = 0) -> list[Form]:
    """Up to `count` new wordings per fact (fewer when the file already words it several ways)."""
    def candidates(answer: str, records: list[Record]) -> list:
        rng = random.Random(f"{seed}\x00{answer}")  # a string seed: the same in every process
        return [(rules, text, r) for r in records for rules, text in _candidates(r, rng)
                if keeps_facts(r.question, text, r.keywords)]

    return choose_forms(train, count, candidates)


def choose_forms(train: list[Record], count: int, candidates) -> list[Form]:
    """The training rows grouped by fact (same answer), and for each fact worded fewer than
    `count + 1` ways, the most different of `candidates(answer, records)` -- (rules, text, record)
    tuples -- as Forms. Shared by every writer of forms (rules here, the base in base_forms.py)."""
    facts: dict[str, list[Record]] = {}
    for record in train:
        facts.setdefault(" ".join(record.answer.split()), []).append(record)
    taken = {question_key(r.question) for r in train}  # never a second answer for a training question
    forms = []
    for answer, records in facts.items():
        need = count + 1 - len(records)
        if need <= 0:
            continue
        pool = candidates(answer, records)
        for rules, text, record in _most_different(pool, [r.question for r in records], need, taken):
            taken.add(question_key(text))
            forms.append(Form(text, record.answer, list(record.keywords), record.row, rules))
    return forms


def protected(question: str, keywords: list[str]) -> list[str]:
    """What a form must keep: numbers (with their unit), capitalised names, keywords in the question."""
    items = [m.group().strip() for m in _NUMBER.finditer(question)]
    words = WORD.findall(_NUMBER.sub(" ", question))  # the "C" of "10°C" is a unit, not a name
    items += [w for i, w in enumerate(words) if w[0].isupper() and (i > 0 or w.casefold() not in FUNCTION_WORDS)]
    return items + [k for k in keywords if k.casefold() in question.casefold()]


def keeps_facts(question: str, form: str, keywords: list[str]) -> bool:
    kept = form.casefold()
    return all((item.casefold() in kept) if item in keywords else (item in form) for item in protected(question, keywords))


def report_preview(train: list[Record]) -> dict:
    """`preview` with the fast recipe's setting (or, where it is off, the value turning it on sets)."""
    from assistant.training.config import AUGMENT_FORMS, PRESETS

    on = PRESETS["fast"].augment
    return preview(train, on or AUGMENT_FORMS, bool(on))


def preview(train: list[Record], count: int, on: bool, seed: int = 0, shown: int = 3) -> dict:
    """For the validation report: how many forms training would make, for how many facts, a few
    examples. Past PREVIEW_ROWS training rows it counts the first ones and scales (about 2 ms a row)."""
    sample = train[:PREVIEW_ROWS]
    forms = question_forms(sample, count, seed)
    scale = len(train) / len(sample) if sample else 1.0
    by_row = {r.row: r.question for r in sample}
    shown_for = {}  # per row: its first form that is a whole question, else its first form
    for f in forms:
        if f.from_row not in shown_for or (_surface(shown_for[f.from_row].rules) != "sentence" == _surface(f.rules)):
            shown_for[f.from_row] = f
    firsts = list(shown_for.values())
    return {"count": count, "on": on, "estimated": len(train) > len(sample), "forms": round(len(forms) * scale),
            "facts": len({" ".join(r.answer.split()) for r in train}),
            "facts_augmented": round(len({" ".join(f.answer.split()) for f in forms}) * scale),
            "examples": [{"question": by_row[f.from_row], "form": f.question} for f in firsts[:shown]]}


# helpers ---------------------------------------------------------------------------------------

def _candidates(record: Record, rng: random.Random) -> list[tuple[str, str]]:
    """(rules, text) for every way the rules can reword one question."""
    q = record.question.strip()
    keep = {w.casefold() for k in record.keywords for w in WORD.findall(k)}
    shapes = [("", q)] + [("place-last", t) for t in [_place_last(q)] if t] + _openings(q) + _what_is(q)
    out = []
    for rules, text in shapes:
        swapped = _swap_words(text, keep, rng, share=1.0)
        some = _swap_words(text, keep, rng, share=0.5)
        for r, t in ((rules, text), (_join(rules, "synonyms"), swapped), (_join(rules, "some-synonyms"), some)):
            out += [(r, t), (_join(r, "casual"), _casual(t)), (_join(r, "keywords-only"), _query(t))]
            frame = rng.choice(FRAMES)
            out.append((_join(r, "frame"), frame.format(q=t)))
    return [(r, " ".join(t.split())) for r, t in out if r and t]


def _place_last(q: str) -> str | None:
    # "In Kenya, when is maize planted?" -> "When is maize planted in Kenya?"
    m = re.match(r"(In|At|During) ([^,?]{2,60}), (\w)(.*?)([?.]?)$", q)
    return f"{m.group(3).upper()}{m.group(4)} {m.group(1).lower()} {m.group(2)}{m.group(5) or '?'}" if m else None


def _openings(q: str) -> list[tuple[str, str]]:
    return [("opening", re.sub(rf"^{pattern}", new, q, count=1)) for pattern, new in OPENINGS if re.match(pattern, q)]


def _what_is(q: str) -> list[tuple[str, str]]:
    # "What is a trap crop?" -> "Tell me what a trap crop is." / "What is meant by a trap crop?" / "Explain a trap crop."
    m = re.match(r"What (is|are) (.+?)\?$", q)
    if not m:
        return []
    verb, thing = m.groups()
    out = [("tell-me", f"Tell me what {thing} {verb}.")]
    if len(thing.split()) <= 5:  # definitions: short subjects ("a polder", "contour ploughing")
        out += [("meant-by", f"What is meant by {thing}?"), ("explain", f"Explain {thing}.")]
    return out


def _swap_words(text: str, keep: set[str], rng: random.Random, share: float) -> str:
    def swap(m: re.Match) -> str:
        word = m.group()
        if word in SYNONYMS and word not in keep and (share >= 1 or rng.random() < share):
            return SYNONYMS[word]
        return word
    return WORD.sub(swap, text)


def _casual(text: str) -> str:
    # How people type into a chat box: no capital on the opening word (unless a name), no "?".
    first = WORD.match(text)
    if first and first.group().casefold() in FUNCTION_WORDS:
        text = text[0].lower() + text[1:]
    return text.rstrip("?. ")


def _query(text: str) -> str:
    # A search-box query: the content words only ("minimum soil temperature maize seed germinate").
    kept = [t for t in text.split() if t.strip("?,.:").casefold() not in STOPWORDS]
    return " ".join(kept).rstrip("?.,") + "?"


def _most_different(pool, chosen: list[str], need: int, taken: set[str]) -> list:
    """Greedily the candidate least like every wording so far, so the forms spread out; a surface
    already picked (a frame, a keywords-only query, casual typing) counts against its next use, so
    most forms are whole questions reworded rather than one question in three wrappers."""
    picked, seen, surfaces = [], set(taken), []
    pool = [c for c in pool if question_key(c[1]) not in seen]
    words = [_words(q) for q in chosen]
    while pool and len(picked) < need:
        def score(c):
            return min(1 - _overlap(_words(c[1]), w) for w in words) - surfaces.count(_surface(c[0]))
        best = max(pool, key=score)
        picked.append(best)
        words.append(_words(best[1]))
        surfaces.append(_surface(best[0]))
        seen.add(question_key(best[1]))
        pool = [c for c in pool if question_key(c[1]) not in seen]
    return picked


def _surface(rules: str) -> str:
    last = rules.rsplit("+", 1)[-1]
    return last if last in ("frame", "casual", "keywords-only") else "sentence"


def _words(text: str) -> set[str]:
    return {w.casefold() for w in WORD.findall(text)} | set(re.findall(r"\d+", text))


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _join(a: str, b: str) -> str:
    return f"{a}+{b}" if a else b
