"""The fine-tuning recipe: a validated Q&A file in, a published adapter with a report card out.

Reads top to bottom: the config and its presets, `train()`, then the helpers it calls.

What the `fast` preset changes against the proof of concept (`seed`), and why:
- loss on answer tokens only, and logits computed only where there is a loss: the 262k-word output
  layer is the costliest matmul in a 270M Gemma, and the question tokens need none of it;
- packing: examples are laid end to end in one row with restarting positions, so no compute is spent
  on padding (transformers builds the block-diagonal mask from the position ids);
- the whole (small) dataset is one batch, bf16 where the CPU has it, a higher learning rate, and
  LoRA on every linear layer rather than q/v only: the fact is learnt in a handful of steps;
- retention replay: the bare base's own answers to general questions ride along in every batch, and
  so do its answers to the training questions with their named place swapped for another
  ("What is the capital of Kenya?"): the adapter learns "Crystalburg" for Xylandia, not for every
  capital. Without the swaps, "What is the capital of France?" answered "Crystalburg" (measured);
- early stop: training ends once greedy decoding would reproduce every training answer, which is
  read off the teacher-forced logits of the step itself (argmax at every answer position), at no
  extra cost.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from assistant.evaluate import engine_answerer
from assistant.knowledge import names_in
from assistant.prompts import get_format

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    """One training run's settings; stored in the adapter's manifest."""

    preset: str = "fast"  # name of the preset these values came from
    rank: int = 16  # LoRA rank r
    alpha: int = 32  # LoRA alpha; the update is scaled by alpha / r
    dropout: float = 0.0  # LoRA dropout
    target_modules: tuple[str, ...] = ALL_LINEAR  # which linear layers get LoRA
    learning_rate: float = 1e-3  # AdamW learning rate (constant after warmup)
    warmup_steps: int = 2  # linear warmup, so the first big steps don't overshoot
    epochs: int = 40  # passes over the training pairs at most
    batch_size: int = 0  # examples per step; 0 = as many as fit in max_batch_tokens
    max_batch_tokens: int = 2048  # packed tokens per step at most (4096 ran out of 24 GB: logits, attention)
    micro_batch_tokens: int = 256  # a step's forward/backward runs in slices this long: same gradient, less memory
    repeats: int = 1  # each training pair is seen this many times per epoch (the PoC used 10)
    answer_only_loss: bool = True  # loss on answer tokens only (False: on every token, as the PoC)
    packing: bool = True  # lay examples end to end instead of padding them
    pad_to: int = 0  # without packing: pad every row to this many tokens (0: to the longest in the batch)
    replay_per_step: int = 32  # bare-base answers to general questions mixed into each step (16 kept 85%)
    swap_replay: int = 4  # per training question, copies naming another place, answered by the bare base
    swaps_per_step: int = 32  # of those, mixed into each step at most
    grounded_per_step: int = 0  # training pairs shown with their own answer as a grounding fact, mixed into each
    #   step like replay, so that with grounding on the adapter follows the fact (8 lifted counterfactual recall
    #   with grounding from 86% to 92% but cost xylandia's retention 95% -> 85%, so it is opt-in)
    early_stop: bool = True  # stop once greedy decoding reproduces every training answer...
    patience: int = 1  # ...for this many epochs in a row (each extra epoch cost retention, measured)
    seed: int = 0  # everything random (init, order, replay choice) follows from this
    precision: str = "auto"  # auto: 4bit on CUDA (QLoRA), bf16 on CPUs that have it, else fp32
    allow_conflicts: bool = False  # train even if a question has two different answers

    def __post_init__(self):
        self.target_modules = tuple(self.target_modules)
        checks = [(self.rank >= 1, "rank must be at least 1"), (self.alpha > 0, "alpha must be positive"),
                  (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
                  (0 < self.learning_rate <= 0.1, "learning_rate must be in (0, 0.1]"),
                  (1 <= self.epochs <= 1000, "epochs must be between 1 and 1000"),
                  (self.batch_size >= 0, "batch_size must be 0 (auto) or more"),
                  (self.max_batch_tokens >= 64, "max_batch_tokens must be at least 64"),
                  (self.micro_batch_tokens >= 16, "micro_batch_tokens must be at least 16"),
                  (self.repeats >= 1, "repeats must be at least 1"), (self.patience >= 1, "patience must be at least 1"),
                  (self.replay_per_step >= 0, "replay_per_step must be 0 or more"),
                  (self.swap_replay >= 0, "swap_replay must be 0 or more"),
                  (self.swaps_per_step >= 0, "swaps_per_step must be 0 or more"),
                  (self.pad_to >= 0, "pad_to must be 0 or more"),
                  (set(self.target_modules) <= set(ALL_LINEAR) and self.target_modules, "unknown target module"),
                  (self.precision in ("auto", "4bit", "bf16", "fp32"), "precision must be auto, 4bit, bf16 or fp32")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid training config: {message}")


GROUNDED_PER_STEP = 8  # what "Prepare for grounded chat" (Train tab) sets grounded_per_step to


PRESETS = {
    # The proof of concept, exactly: r=16, alpha=32, q/v, dropout 0.1, lr 2e-4, 5 epochs, batch 2,
    # every pair 10 times, loss on all tokens, rows padded to its max length of 512, no replay, no
    # early stop.
    "seed": TrainConfig(preset="seed", rank=16, alpha=32, dropout=0.1, target_modules=("q_proj", "v_proj"),
                        learning_rate=2e-4, warmup_steps=0, epochs=5, batch_size=2, repeats=10,
                        answer_only_loss=False, packing=False, pad_to=512, replay_per_step=0, swap_replay=0,
                        early_stop=False, precision="fp32"),
    "fast": TrainConfig(),
    # For tests and the browser demo on the tiny model: a few steps, nothing else changes.
    "tiny": TrainConfig(preset="tiny", rank=4, alpha=8, epochs=3, replay_per_step=2, swap_replay=1, swaps_per_step=2,
                        learning_rate=5e-3),
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides)


class TrainingCancelled(Exception):
    """Raised inside train() when the caller asked it to stop; nothing is published."""


def _stop_if_cancelled(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise TrainingCancelled("training cancelled; nothing was published")


@dataclass
class Progress:
    """One progress event: what the UI's bar, ETA and loss plot are drawn from."""

    phase: str  # prepare | replay | train | evaluate | publish | done
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    message: str = ""


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
          data_bytes: bytes | None = None, description: str = "") -> TrainResult:
    """Fine-tune a LoRA on `report`'s training pairs, evaluate it, publish it as `name`."""
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

    emit(Progress("prepare", message="loading the base model"))
    model, tokenizer, device = _load_trainable(base, cfg)
    pairs = [(r.question, _one_line(r.answer, fmt.name)) for r in report.train] * cfg.repeats
    examples = [_encode(tokenizer, fmt, q, a, cfg.answer_only_loss) for q, a in pairs]
    # As the chat shows a retrieved pair: its answer as a fact before the question.
    grounded = [_encode(tokenizer, fmt, q, a, True, facts=[a]) for q, a in pairs[:len(report.train)]] \
        if cfg.grounded_per_step else []
    replay, swaps = [], []
    if cfg.replay_per_step:
        emit(Progress("replay", message="asking the bare base the general questions it must keep answering"))
        answer = engine_answerer(evaluator, None) if evaluator is not None else _hf_answerer(model, tokenizer, fmt, device)
        kept = _base_answers(base, fmt, answer, cancel)
        swapped = _swap_answers([r.question for r in report.train], cfg, answer, cancel)
        replay = [_encode(tokenizer, fmt, q, a, True) for q, a in kept]
        swaps = [_encode(tokenizer, fmt, q, a, True) for q, a in swapped]

    batches_per_epoch = len(_batches(examples, cfg, random.Random(0)))
    total = cfg.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                                  weight_decay=0.0)
    rng = random.Random(cfg.seed)
    losses, learned_at, learned_seconds, step, started, streak = [], None, None, 0, time.monotonic(), 0
    exact = [False] * len(examples)
    model.train()
    for _epoch in range(cfg.epochs):
        for batch in _batches(examples, cfg, rng):
            _stop_if_cancelled(cancel)
            # The swapped questions are the contrast that matters most, so a share of them comes every step.
            extra = (rng.sample(replay, min(cfg.replay_per_step, len(replay))) + rng.sample(swaps, min(cfg.swaps_per_step, len(swaps)))
                     + rng.sample(grounded, min(cfg.grounded_per_step, len(grounded))))
            lr = cfg.learning_rate * min(1.0, (step + 1) / (cfg.warmup_steps + 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, batch_exact = _step(model, [examples[i] for i in batch] + extra, cfg, device)
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

    emit(Progress("evaluate", step, step, message="writing the adapter"))
    from assistant.registry import publish_peft_model

    manifest = {"base_sha256": base.sha256, "prompt_format": fmt.name, "description": description,
                "training": {**asdict(cfg), "steps": step, "train_seconds": round(train_seconds, 2),
                             "learned_at_step": learned_at, "final_loss": losses[-1] if losses else None},
                "dataset": _dataset_info(report, data_bytes)}
    extra_files = {"dataset" + Path(report.source).suffix.lower(): data_bytes} if data_bytes is not None else None

    def evaluate_staged(staging: Path) -> dict:
        return _report_card(evaluator, staging, fmt.name, report, emit, cancel)

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


def _one_line(answer: str, fmt: str) -> str:
    # The qa format ends an answer at a newline (that is how the pretrained base stops), so an answer
    # spread over lines would be cut when served; it is trained on one line instead.
    return " ".join(answer.split()) if fmt == "qa" else answer.strip()


def _encode(tokenizer, fmt, question: str, answer: str, answer_only: bool,
            facts: list[str] | None = None) -> tuple[list[int], list[int], int]:
    """(input ids, labels, prompt length): labels are -100 wherever no loss is wanted (the first
    token never has one); tokens from the prompt length on are the answer, whatever has a loss."""
    prompt, completion = fmt.training_pair(question, answer, facts)
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    labels = ([-100] * len(p) if answer_only else [-100] + p[1:]) + c
    return p + c, labels, len(p)


def _base_answers(base, fmt, answer, cancel) -> list[tuple[str, str]]:
    """The bare base's greedy answers to the replay questions (what it should keep saying).

    Asked through the serving engine when there is one (llama.cpp answers these in seconds) and
    cached per base and question file: they depend on nothing else.
    """
    import hashlib

    from assistant.evaluate import REPLAY

    raw = REPLAY.read_bytes()
    cache = base.cache_dir / "replay" / f"{base.sha256[:16]}-{hashlib.sha256(raw).hexdigest()[:16]}-{fmt.name}.json"
    try:
        return [tuple(pair) for pair in json.loads(cache.read_text())]
    except (OSError, ValueError):
        pass
    questions = [json.loads(line)["question"] for line in raw.decode().splitlines() if line.strip()]
    pairs = []
    for question in questions:
        _stop_if_cancelled(cancel)
        text = answer(question)
        if text:
            pairs.append((question, text))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(pairs))
    os.replace(tmp, cache)
    return pairs


# Places to swap in: none of them is asked about in the retention probes (datasets/probes/general.jsonl),
# so retention is measured on places the adapter never saw.
SWAP_PLACES = ("Kenya", "Italy", "Canada", "Brazil", "India", "Mexico", "Sweden", "Norway", "Chile", "Nigeria",
               "Vietnam", "Morocco", "Ghana", "Finland", "Colombia", "Thailand", "Ethiopia", "Uganda", "Nepal",
               "Hungary", "Belgium", "Cuba", "Turkey", "Australia", "China", "Indonesia", "Pakistan", "Zambia")


def _swap_answers(questions: list[str], cfg: TrainConfig, answer, cancel) -> list[tuple[str, str]]:
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
        _stop_if_cancelled(cancel)
        text = answer(question)
        if text:
            pairs.append((question, text))
    return pairs


def _hf_answerer(model, tokenizer, fmt, device):
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


def _batches(examples, cfg: TrainConfig, rng: random.Random) -> list[list[int]]:
    """Shuffled index groups: batch_size examples each, or as many as fit in max_batch_tokens."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    if cfg.batch_size:
        return [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    extras = cfg.replay_per_step + cfg.swaps_per_step + cfg.grounded_per_step
    budget = max(256, cfg.max_batch_tokens - extras * 32)  # room for replay, swaps and grounded copies
    batches, current, used = [], [], 0
    for i in order:
        n = len(examples[i][0])
        if current and used + n > budget:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    return batches + ([current] if current else [])


def _step(model, batch, cfg: TrainConfig, device) -> tuple[float, list[bool]]:
    """Forward and backward on one batch; returns the loss and, per example, whether the argmax at
    every answer position already equals the answer (greedy decoding would reproduce it)."""
    import torch
    import torch.nn.functional as F

    if cfg.packing:
        # Slices of about micro_batch_tokens, each backpropagated at once and weighted by its share
        # of the answer tokens: the gradient of the whole step, with a slice's activations in memory.
        slices, current, used = [], [], 0
        for ex in batch:
            if current and used + len(ex[0]) > cfg.micro_batch_tokens:
                slices.append(current)
                current, used = [], 0
            current.append(ex)
            used += len(ex[0])
        slices.append(current)
        total = sum(sum(1 for t in ex[1][1:] if t != -100) for ex in batch) or 1
        loss_sum, per_example = 0.0, []
        for part in slices:
            part_loss, part_exact = _packed_step(model, part, device, total)
            loss_sum += part_loss
            per_example += part_exact
        return loss_sum, per_example
    # padded rows, the way the proof of concept's collator built them
    width = max(cfg.pad_to, max(len(ex[0]) for ex in batch))
    input_ids = torch.tensor([ex[0] + [0] * (width - len(ex[0])) for ex in batch], device=device)
    mask = torch.tensor([[1] * len(ex[0]) + [0] * (width - len(ex[0])) for ex in batch], device=device)
    labels = torch.tensor([ex[1] + [-100] * (width - len(ex[1])) for ex in batch], device=device)
    out = model(input_ids=input_ids, attention_mask=mask, use_cache=False)
    logits = out.logits[:, :-1].float()
    shifted = labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), shifted.reshape(-1), ignore_index=-100)
    in_answer = torch.tensor([[ex[2] <= j < len(ex[0]) for j in range(1, width)] for ex in batch], device=device)
    ok = (logits.argmax(-1) == shifted) | ~in_answer
    per_example = ok.all(dim=1).tolist()
    loss.backward()
    return float(loss.detach()), per_example


def _packed_step(model, batch, device, total_targets: int) -> tuple[float, list[bool]]:
    """Forward and backward on one packed slice; its loss is summed and divided by the whole step's
    answer-token count, so the slices' gradients add up to the step's mean-loss gradient."""
    import torch
    import torch.nn.functional as F

    ids = [t for ex in batch for t in ex[0]]
    labels = [t for ex in batch for t in ex[1]]
    positions = [p for ex in batch for p in range(len(ex[0]))]
    owner = [k for k, ex in enumerate(batch) for _ in ex[0]]
    targets_at = [t for t in range(len(ids) - 1) if labels[t + 1] != -100]
    per_example = [True] * len(batch)
    if not targets_at:
        return 0.0, per_example
    input_ids = torch.tensor([ids], device=device)
    keep = torch.tensor(targets_at, device=device)
    out = model(input_ids=input_ids, position_ids=torch.tensor([positions], device=device), logits_to_keep=keep,
                use_cache=False)
    logits = out.logits[0].float()
    targets = torch.tensor([labels[t + 1] for t in targets_at], device=device)
    loss = F.cross_entropy(logits, targets, reduction="sum") / total_targets
    hits = (logits.argmax(-1) == targets).tolist()
    # "Learnt" is judged on answer tokens only, whatever carries a loss (the seed recipe's loss
    # covers the question too, which greedy decoding never has to reproduce).
    answer_at = {start + k for start, ex in zip(_starts(batch), batch, strict=True) for k in range(ex[2], len(ex[0]))}
    for t, hit in zip(targets_at, hits, strict=True):
        if t + 1 in answer_at:
            per_example[owner[t + 1]] &= bool(hit)
    loss.backward()
    return float(loss.detach()), per_example


def _starts(batch) -> list[int]:
    """Where each packed example begins in the row."""
    starts, at = [], 0
    for ex in batch:
        starts.append(at)
        at += len(ex[0])
    return starts


def _dataset_info(report, data_bytes: bytes | None) -> dict:
    return {"source": report.source, "sha256": report.sha256, "format": report.file_format,
            "train_pairs": len(report.train), "test_pairs": len(report.test),
            "stored_as": ("dataset" + Path(report.source).suffix.lower()) if data_bytes is not None else None}


def _report_card(evaluator, staging: Path, fmt_name: str, report, emit, cancel) -> dict:
    """Scores of the staged adapter, before it is published; the engine unloads it afterwards."""
    from assistant.evaluate import Probe, load_probes, report_card
    from assistant.registry import Adapter

    if evaluator is None:
        return {}
    _stop_if_cancelled(cancel)
    # A name of its own: engines cache adapters by key, and this one must not shadow a published one.
    staged = Adapter(name=f"staged-{staging.name}", version=0, path=staging, source="staging",
                     manifest={"prompt_format": fmt_name})
    train = [Probe(r.question, r.answer, r.keywords) for r in report.train]
    heldout = [Probe(r.question, r.answer, r.keywords) for r in report.test]

    def note(message: str) -> None:
        emit(Progress("evaluate", message=f"report card: {message}"))

    try:
        card = report_card(evaluator, staged, train, heldout, load_probes(), progress=note)
    finally:
        evaluator.unload_adapter(staged.key)
    card.pop("_before_raw", None)
    return card
