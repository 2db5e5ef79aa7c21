"""The fine-tuning recipe: a validated Q&A file in, a published adapter with a report card out.

Reads top to bottom: `train()`, then the helpers it calls, in the order it calls them. The config
and its presets are in config.py, the replay answers in replay.py, the steps in steps.py.

What the `fast` preset changes against the proof of concept (`seed`), and why:
- loss on answer tokens only, and logits computed only where there is a loss (steps.py);
- packing: examples laid end to end in one row, so no compute is spent on padding (steps.py);
- the whole (small) dataset is one batch, bf16 where the CPU has it, a higher learning rate, and
  LoRA on every linear layer rather than q/v only: the fact is learnt in a handful of steps;
- retention replay: the bare base's own answers to general questions, and to the training
  questions with their named place swapped, ride along in every batch (replay.py);
- early stop: training ends once greedy decoding would reproduce every training answer, which is
  read off the teacher-forced logits of the step itself, at no extra cost.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.prompts import get_format
from assistant.training import augment, replay, steps
from assistant.training.base_answers import BaseAnswers
from assistant.training.config import TrainConfig
from assistant.training.evaluate import Probe, engine_answerer, load_probes, report_card
from assistant.training.grounded import examples as grounded_examples
from assistant.training.progress import Progress, stop_if_cancelled


@dataclass
class TrainResult:
    adapter: object  # the published registry Adapter
    report_card: dict
    steps: int
    train_seconds: float  # wall time of the optimisation loop alone
    learned_at_step: int | None  # first step after which every training answer was reproduced
    learned_seconds: float | None  # training wall time until then
    losses: list[float] = field(default_factory=list)


def train(cfg: TrainConfig, base, registry, report, name: str, evaluator=None,
          on_progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
          data_bytes: bytes | None = None, description: str = "", answer_policy: str = "open",
          lineage: dict | None = None) -> TrainResult:
    """Fine-tune a LoRA on `report`'s training pairs, evaluate it, publish it as `name`.

    `lineage` (assistant.training.next_version): what this dataset changed against the serving
    version; it is stored beside the adapter, and the version is published as a candidate that
    serves only once its gate promotes it."""
    import torch

    from assistant.registry import validate_name

    emit = on_progress or (lambda p: None)
    cancel = cancel or threading.Event()
    validate_name(name)
    problems = report.blocking_problems(allow_conflicts=cfg.allow_conflicts)
    if problems:
        raise ValueError("cannot train on this file: " + "; ".join(problems))
    fmt = get_format(base.prompt_format)
    _seed_everything(cfg.seed)
    # The app's job runner asks for fewer threads so chats keep a core (see assistant/jobs.py).
    torch.set_num_threads(int(os.environ.get("ASSISTANT_TRAIN_THREADS") or max(1, len(os.sched_getaffinity(0)))))
    torch.set_flush_denormal(True)  # tiny LoRA/Adam values as denormals made CPU steps 20x slower (measured)

    # set up: the model, and every example a step may draw from ---------------------------------
    emit(Progress("prepare", message="loading the base model"))
    model, tokenizer, device = _load_trainable(base, cfg)
    # More wordings of each training question (never from held-out rows: only report.train goes in).
    forms = _question_forms(cfg, report.train, evaluator, (model, tokenizer, device), emit, cancel)
    rows = [(r.question, r.answer) for r in report.train] + [(f.question, f.answer) for f in forms]
    pairs = [(q, steps.one_line(a, fmt.name)) for q, a in rows] * cfg.repeats
    examples = [steps.encode(tokenizer, fmt, q, a, cfg.answer_only_loss) for q, a in pairs]
    # As a grounded chat shows retrieved pairs: answers as facts before the question, the right one or not.
    grounded = [steps.encode(tokenizer, fmt, q, a, True, facts=facts) for q, a, facts in grounded_examples(
        pairs[:len(report.train)], cfg.grounded_distractors, cfg.grounded_without_pair, cfg.seed)] \
        if cfg.grounded_per_step else []
    general, swaps = [], []
    if cfg.replay_per_step:
        emit(Progress("replay", message="asking the bare base the general questions it must keep answering"))
        answer = engine_answerer(evaluator, None) if evaluator is not None else replay.hf_answerer(model, tokenizer, fmt, device)
        kept = replay.base_answers(base, fmt, answer, cancel)
        swapped = replay.swap_answers([r.question for r in report.train], cfg, answer, cancel)
        general = [steps.encode(tokenizer, fmt, q, a, True) for q, a in kept]
        swaps = [steps.encode(tokenizer, fmt, q, a, True) for q, a in swapped]

    # fit: epochs of steps until every training answer is reproduced -----------------------------
    batches_per_epoch = len(steps.batches(examples, cfg, random.Random(0)))
    total = cfg.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                                  weight_decay=0.0)
    rng = random.Random(cfg.seed)
    losses, learned_at, learned_seconds, step, started, streak = [], None, None, 0, time.monotonic(), 0
    exact = [False] * len(examples)
    model.train()
    for _epoch in range(cfg.epochs):
        for batch in steps.batches(examples, cfg, rng):
            stop_if_cancelled(cancel)
            # The swapped questions are the contrast that matters most, so a share of them comes every step.
            extra = (rng.sample(general, min(cfg.replay_per_step, len(general)))
                     + rng.sample(swaps, min(cfg.swaps_per_step, len(swaps)))
                     + rng.sample(grounded, min(cfg.grounded_per_step, len(grounded))))
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(cfg, step)
            loss, batch_exact = steps.forward_backward(model, [examples[i] for i in batch] + extra, cfg, device)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for i, ok in zip(batch, batch_exact, strict=False):
                exact[i] = ok
            step += 1
            losses.append(loss)
            elapsed = time.monotonic() - started
            emit(Progress("train", step, total, loss, elapsed / step * (total - step), f"step {step}/{total}"))
            if learned_at is None and all(exact):
                learned_at, learned_seconds = step, elapsed
        streak = streak + 1 if all(exact) else 0
        if cfg.early_stop and streak >= cfg.patience:
            break
    train_seconds = time.monotonic() - started
    model.eval()

    # publish: staged, scored, then made visible by one rename ----------------------------------
    emit(Progress("evaluate", step, step, message="writing the adapter"))
    from assistant.registry import publish_peft_model

    manifest = {"base_sha256": base.sha256, "prompt_format": fmt.name, "description": description,
                "answer_policy": answer_policy,
                "training": {**asdict(cfg), "steps": step, "train_seconds": round(train_seconds, 2),
                             "learned_at_step": learned_at, "final_loss": losses[-1] if losses else None},
                "dataset": _dataset_info(report, data_bytes, forms)}
    extra_files = {"dataset" + Path(report.source).suffix.lower(): data_bytes} if data_bytes is not None else {}
    if forms:  # the generated rows beside the uploaded ones, each marked "generated", for a trainer to read
        import json

        extra_files[augment.FILE] = "".join(json.dumps(f.to_row(), ensure_ascii=False) + "\n" for f in forms).encode()
    if lineage is not None:
        import json

        from assistant.registry import LINEAGE

        manifest["candidate"] = True
        extra_files[LINEAGE] = json.dumps(lineage, indent=2, ensure_ascii=False).encode("utf-8")

    def evaluate_staged(staging: Path) -> dict:
        return _report_card(evaluator, staging, fmt.name, report, emit, cancel, base)

    adapter = publish_peft_model(registry, model, name, manifest, extra_files, before_publish=evaluate_staged)
    emit(Progress("done", step, step, message=f"published {adapter.name} v{adapter.version}"))
    return TrainResult(adapter, adapter.report_card or {}, step, train_seconds, learned_at, learned_seconds, losses)


# helpers, in the order train() uses them ----------------------------------------------------------

def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _load_trainable(base, cfg: TrainConfig):
    """The base (frozen, at the config's precision) with fresh LoRA layers, and its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoTokenizer

    from assistant.engines.hf import choose_precision, load_base_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = choose_precision(cfg.precision, device == "cuda")
    hf_dir = base.ensure_hf_dir()
    model = load_base_model(hf_dir, precision, device)
    if precision == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none",
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)  # adapters in fp32 even over a bf16 base (peft's default)
    return model, AutoTokenizer.from_pretrained(hf_dir), device


def _question_forms(cfg: TrainConfig, train_rows, evaluator, trainable, emit, cancel) -> list:
    """The generated wordings of the training questions, by rules or by the base (augment_by)."""
    if not cfg.augment:
        return []
    if cfg.augment_by == "rules":
        return augment.question_forms(train_rows, cfg.augment, cfg.seed)
    from assistant.training import base_forms

    emit(Progress("augment", message=f"the base model rewords {len(train_rows)} questions"))
    complete = base_forms.engine_completer(evaluator) if evaluator is not None else base_forms.hf_completer(*trainable)
    forms = base_forms.base_forms(train_rows, cfg.augment, complete, cfg.seed, cancel)
    stop_if_cancelled(cancel)
    return forms


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warmup over the first warmup_steps, then constant: a few big steps learn the facts."""
    return cfg.learning_rate * min(1.0, (step + 1) / (cfg.warmup_steps + 1))


def _dataset_info(report, data_bytes: bytes | None, forms: list) -> dict:
    return {"source": report.source, "sha256": report.sha256, "format": report.file_format,
            "train_pairs": len(report.train), "test_pairs": len(report.test),
            "stored_as": ("dataset" + Path(report.source).suffix.lower()) if data_bytes is not None else None,
            "generated_pairs": len(forms), "generated_stored_as": augment.FILE if forms else None}


def heldout_facts(report) -> list[tuple[str, str] | None]:
    """For each held-out row: (the answer of the training pair it rewords, the answer of the other
    training pair whose question shares the most words with it), or None where it names no pair."""
    from assistant.training.grounded import nearest_others, words

    by_question = {" ".join(r.question.lower().split()): r for r in report.train}
    pairs = [(r.question, r.answer) for r in report.train]
    vocabulary = [words(question) for question, _ in pairs]  # once, not once per held-out row
    out: list[tuple[str, str] | None] = []
    for row in report.test:
        own = by_question.get(" ".join((row.paraphrase_of or "").lower().split()))
        if own is None:
            out.append(None)
            continue
        # Ranked by the held-out question's words, as retrieval ranks by what the farmer asked.
        others = nearest_others([(row.question, own.answer), *pairs], 0, 1, [words(row.question), *vocabulary])
        out.append((own.answer, pairs[others[0] - 1][1]) if others else None)
    return out


def _report_card(evaluator, staging: Path, fmt_name: str, report, emit, cancel, base=None) -> dict:
    """Scores of the staged adapter, before it is published; the engine unloads it afterwards."""
    from assistant.registry import Adapter

    if evaluator is None:
        return {}
    stop_if_cancelled(cancel)
    # A name of its own: engines cache adapters by key, and this one must not shadow a published one.
    staged = Adapter(name=f"staged-{staging.name}", version=0, path=staging, source="staging",
                     manifest={"prompt_format": fmt_name})
    train_probes = [Probe(r.question, r.answer, r.keywords) for r in report.train]
    heldout = [Probe(r.question, r.answer, r.keywords) for r in report.test]

    def note(message: str) -> None:
        emit(Progress("evaluate", message=f"report card: {message}"))

    try:
        card = report_card(evaluator, staged, train_probes, heldout, load_probes(), progress=note,
                           base_answers=BaseAnswers.for_base(base), heldout_facts=heldout_facts(report))
    finally:
        evaluator.unload_adapter(staged.key)
    card.pop("_before_raw", None)
    return card
