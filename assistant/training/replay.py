"""Retention replay: the bare base's own answers, mixed into every training step.

An adapter trained on its facts alone leaks them into unrelated questions. Two kinds of replay
hold that back, both answered by the bare base (the adapter is to keep saying what it said):
- general questions (datasets/probes/replay.jsonl), so general knowledge stays;
- the training questions with their named place swapped for another ("What is the capital of
  Kenya?"), so the adapter learns "Crystalburg" for Xylandia, not for every capital. Without the
  swaps, "What is the capital of France?" answered "Crystalburg" (measured).
"""

from __future__ import annotations

import hashlib
import json
import random

from assistant.fsutil import write_text_atomic
from assistant.grounding.names import names_in
from assistant.paths import DATASETS
from assistant.training.config import TrainConfig
from assistant.training.progress import stop_if_cancelled

REPLAY = DATASETS / "probes" / "replay.jsonl"

# Places to swap in: none of them is asked about in the retention probes (datasets/probes/general.jsonl),
# so retention is measured on places the adapter never saw.
SWAP_PLACES = ("Kenya", "Italy", "Canada", "Brazil", "India", "Mexico", "Sweden", "Norway", "Chile", "Nigeria",
               "Vietnam", "Morocco", "Ghana", "Finland", "Colombia", "Thailand", "Ethiopia", "Uganda", "Nepal",
               "Hungary", "Belgium", "Cuba", "Turkey", "Australia", "China", "Indonesia", "Pakistan", "Zambia")


def base_answers(base, fmt, answer, cancel) -> list[tuple[str, str]]:
    """The bare base's greedy answers to the replay questions (what it should keep saying).

    Asked through the serving engine when there is one (llama.cpp answers these in seconds) and
    cached per base and question file: they depend on nothing else.
    """
    raw = REPLAY.read_bytes()  # read once: its hash keys the cache, its lines are the questions
    cache = base.cache_dir / "replay" / f"{base.sha256[:16]}-{hashlib.sha256(raw).hexdigest()[:16]}-{fmt.name}.json"
    try:
        return [tuple(pair) for pair in json.loads(cache.read_text())]
    except (OSError, ValueError):
        pass
    questions = [json.loads(line)["question"] for line in raw.decode().splitlines() if line.strip()]
    pairs = []
    for question in questions:
        stop_if_cancelled(cancel)
        text = answer(question)
        if text:
            pairs.append((question, text))
    write_text_atomic(cache, json.dumps(pairs))  # a concurrent run never reads half a cache file
    return pairs


def swap_answers(questions: list[str], cfg: TrainConfig, answer, cancel) -> list[tuple[str, str]]:
    """The bare base's answers to training questions whose named place is swapped for another."""
    rng = random.Random(cfg.seed + 1)
    names = {n for q in questions for n in names_in(q)}
    variants = []
    for question in questions:
        found = [n for n in names_in(question) if n not in SWAP_PLACES]
        if found:
            places = [p for p in SWAP_PLACES if p not in names]
            variants += [question.replace(found[0], place) for place in rng.sample(places, min(cfg.swap_replay, len(places)))]
    variants = list(dict.fromkeys(variants))
    rng.shuffle(variants)
    pairs = []
    for question in variants[:256]:  # enough to teach the contrast; bounded for big files
        stop_if_cancelled(cancel)
        text = answer(question)
        if text:
            pairs.append((question, text))
    return pairs


def hf_answerer(model, tokenizer, fmt, device):
    """Greedy answers from the training model with its adapter disabled (when no engine is given)."""
    import torch

    from assistant.prompts import StopScanner

    def answer(question: str) -> str:
        ids = torch.tensor([tokenizer(fmt.render([{"role": "user", "content": question}]))["input_ids"]], device=device)
        with torch.no_grad(), model.disable_adapter():
            out = model.generate(input_ids=ids, max_new_tokens=24, do_sample=False, pad_token_id=0,
                                 eos_token_id=list(fmt.stop_token_ids), stop_strings=list(fmt.stop_strings),
                                 tokenizer=tokenizer)
        text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        return StopScanner(fmt.stop_strings).feed(text.lstrip()).strip()

    return answer
