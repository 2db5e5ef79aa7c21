"""Question forms written by the base model itself (`augment_by="base"`), checked before use.

Why beside the rules (augment.py): rules swap words and openings, so their forms stay close to the
uploaded wording, while a farmer's own question says "lack of water" for "drought". A model rewords
freely. The base is asked with a few-shot prompt (examples on other topics, never a row of the file)
to ask each training question again in other words, a few sampled tries a question, seeded.

Why every form is checked: a form teaches the adapter to give the pair's answer to that form, so a
form that asks something else teaches a confident wrong answer. A try is kept only when it is one
question, keeps what a rule-made form must keep (numbers, units, names, keywords:
`augment.keeps_facts`), brings no number, name or question word the pair does not have, asks for
something the pair is about, and keeps most of the question's content words (a synonym the rules
know counts as kept). The answer is never touched, and only training rows are ever shown.

Measured on the embedded 270M base: most tries ask something else ("What colour maize is most
sensitive to drought?"), and the few kept did not lift held-out recall (README, "Grounded
training"). It is here for a bigger Gemma 3 base, expected to word them better (not measured: none
is on this machine).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from assistant.data.report import Record, question_key
from assistant.training.augment import STOPWORDS, SYNONYMS, WORD, Form, choose_forms, keeps_facts

TRIES = 6  # tries a question (the first greedy, the rest sampled); the forms are chosen from those that pass
TEMPERATURE = 0.8
MAX_TOKENS = 48  # a question is one line; a try that runs on is cut at its first line break
MIN_KEPT = 0.5  # share of the question's content words a form must keep...
MIN_FROM_PAIR = 0.75  # ...and of its own content words that the question or the answer has ("in winter" is new)
WH_WORDS = {"when", "where", "who", "why", "how"}  # a form may not bring one the question lacks
YES_NO = {"is", "are", "do", "does", "can", "could", "should", "will", "would", "was", "were", "did", "has", "have"}
PROMPT = """Each question below is asked again in other words. The new wording asks for the same fact.

Question: How long should bread dough rise before baking?
Asked another way: For how much time does bread dough need to prove before it goes in the oven?

Question: Which metal is the best conductor of electricity?
Asked another way: What metal lets electric current through most easily?

Question: Why do leaves change colour in autumn?
Asked another way: What makes tree leaves turn red and yellow in the fall?

Question: {question}
Asked another way:"""

Complete = Callable[[str, "int | None"], str]  # (prompt, sampling seed or None: greedy) -> its first line
_NAME_OR_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|\b[A-Z][a-z]+\b")


def base_forms(train: list[Record], count: int, complete: Complete, seed: int = 0,
               cancel: threading.Event | None = None, tries: int = TRIES) -> list[Form]:
    """Up to `count` checked wordings per fact written by the base (fewer when the file already
    words the fact several ways, as with the rules)."""
    def candidates(_answer: str, records: list[Record]) -> list:
        pool = []
        for record in records:
            for attempt in range(tries):
                if cancel is not None and cancel.is_set():
                    return []  # a fact half asked gets no forms; the recipe then stops
                sampling = (seed * tries + attempt) % 2**31 if attempt else None  # the first try greedy
                text = " ".join(complete(PROMPT.format(question=record.question.strip()), sampling).split())
                if accepted(record, text):
                    pool.append(("base-model", text, record))
        return pool

    return choose_forms(train, count, candidates)


def accepted(record: Record, text: str) -> bool:
    """Whether a try may teach the pair's answer: one whole question asking for the same fact."""
    question = record.question.strip()
    known = question + " " + record.answer
    words = [w.casefold() for w in WORD.findall(text)]
    asked = {w.casefold() for w in WORD.findall(question)}
    if not text.endswith("?") or text.count("?") != 1 or not 3 <= len(words) <= 2 * len(question.split()) + 4:
        return False
    if question_key(text) == question_key(question) or not keeps_facts(question, text, record.keywords):
        return False
    if (set(words) & WH_WORDS) - asked or (words[0] in YES_NO and _first(question) not in YES_NO):
        return False  # "Where is maize ..." for "At which stage ...", "Is ..." for "What ...": another question
    thing = _asked_for(words)
    if thing and not any(_stem(thing) == _stem(w) for w in WORD.findall(known)):
        return False  # "What colour maize ...": what it asks for is not what the pair is about
    if any(item not in known for item in _NAME_OR_NUMBER.findall(text) if not _opening(text, item)):
        return False  # a number or name the pair never mentions: another fact, or one made up
    return kept_share(question, text) >= MIN_KEPT and kept_share(text, known) >= MIN_FROM_PAIR


def kept_share(question: str, form: str) -> float:
    """Share of the question's content words the form still has, itself or as a synonym the rules
    know (either way round), compared by stem (`_stem`: "germinate" keeps "germination")."""
    content = [w.casefold() for w in WORD.findall(question) if w.casefold() not in STOPWORDS]
    if not content:
        return 1.0
    have = set()
    for word in (w.casefold() for w in WORD.findall(form)):
        have |= {_stem(word)} | {_stem(w) for w in SYNONYMS.get(word, "").split()}

    def kept(word: str) -> bool:
        return _stem(word) in have or any(_stem(w) in have for w in SYNONYMS.get(word, "").split())

    return sum(map(kept, content)) / len(content)


def engine_completer(engine) -> Complete:
    """`complete` from an answer engine (llama.cpp or transformers) with no adapter: greedy, or
    sampled at TEMPERATURE with the seed it is given; cut at the first line."""
    from assistant.engines import GenerationSettings

    def complete(prompt: str, seed: int | None) -> str:
        settings = GenerationSettings(max_tokens=MAX_TOKENS, temperature=0.0 if seed is None else TEMPERATURE,
                                      seed=seed or 0)
        ids, text = [], ""
        stream = engine.generate_ids(engine.tokenize(prompt), None, settings)
        try:
            for token in stream:
                ids.append(token)
                text = engine.detokenize(ids)
                if "\n" in text:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a try cut at its line break frees its slot now
        return text.split("\n", 1)[0].strip()

    return complete


def hf_completer(model, tokenizer, device) -> Complete:
    """`complete` from the model being trained, its adapter disabled (where no engine is given)."""
    import torch

    def complete(prompt: str, seed: int | None) -> str:
        ids = torch.tensor([tokenizer(prompt)["input_ids"]], device=device)
        sampled = seed is not None
        torch.manual_seed(seed or 0)
        with torch.no_grad(), model.disable_adapter():
            out = model.generate(input_ids=ids, max_new_tokens=MAX_TOKENS, do_sample=sampled, pad_token_id=0,
                                 temperature=TEMPERATURE if sampled else None, top_p=None, top_k=None,
                                 stop_strings=["\n"], tokenizer=tokenizer)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n", 1)[0].strip()

    return complete


def _stem(word: str) -> str:
    """Words compared without their usual endings: "parts" is "part", "germination" is "germinate"."""
    word = word.casefold()
    for ending in ("ing", "ed", "es", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[:-len(ending)]
            break
    return word[:5]


def _first(text: str) -> str:
    words = WORD.findall(text)
    return words[0].casefold() if words else ""


def _asked_for(words: list[str]) -> str | None:
    """The noun an opening "What"/"Which" asks for ("What colour ..." -> "colour"), if any."""
    if not words or words[0] not in ("what", "which"):
        return None
    rest = words[1:]
    if len(rest) >= 2 and rest[0] in ("kind", "type", "sort", "kinds", "types") and rest[1] == "of":
        rest = rest[2:]
    return rest[0] if rest and rest[0] not in STOPWORDS else None


def _opening(text: str, item: str) -> bool:
    return text.startswith(item) and not item[0].isdigit()  # the first word is capitalised anyway

