"""From Q&A pairs to gradients: examples as token ids, batches of them, and one step's forward and backward.

An example is (input ids, labels, prompt length). Two ways to run a step:
- padded rows, exactly as the proof of concept's collator built them (the `seed` preset);
- packed (the `fast` preset): examples laid end to end in one row with restarting positions, so no
  compute is spent on padding (transformers builds the block-diagonal mask from the position ids),
  and logits computed only where there is a loss: the 262k-word output layer is the costliest
  matmul in a 270M Gemma, and the question tokens need none of it.
Either way the step also says, per example, whether greedy decoding would already reproduce its
answer (argmax at every answer position of the teacher-forced logits): early stopping for free.
"""

from __future__ import annotations

import random

from assistant.training.config import TrainConfig

Example = tuple[list[int], list[int], int]  # (input ids, labels, prompt length)


def one_line(answer: str, fmt: str) -> str:
    # The qa format ends an answer at a newline (that is how the pretrained base stops), so an answer
    # spread over lines would be cut when served; it is trained on one line instead.
    return " ".join(answer.split()) if fmt == "qa" else answer.strip()


def encode(tokenizer, fmt, question: str, answer: str, answer_only: bool,
           facts: list[str] | None = None) -> Example:
    """(input ids, labels, prompt length): labels are -100 wherever no loss is wanted (the first
    token never has one); tokens from the prompt length on are the answer, whatever has a loss."""
    prompt, completion = fmt.training_pair(question, answer, facts)
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    labels = ([-100] * len(p) if answer_only else [-100] + p[1:]) + c
    return p + c, labels, len(p)


def batches(examples: list[Example], cfg: TrainConfig, rng: random.Random) -> list[list[int]]:
    """Shuffled index groups: batch_size examples each, or as many as fit in max_batch_tokens."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    if cfg.batch_size:
        return [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    extras = cfg.replay_per_step + cfg.swaps_per_step + cfg.grounded_per_step
    budget = max(256, cfg.max_batch_tokens - extras * 32)  # room for replay, swaps and grounded copies
    groups, current, used = [], [], 0
    for i in order:
        n = len(examples[i][0])
        if current and used + n > budget:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    return groups + ([current] if current else [])


def forward_backward(model, batch: list[Example], cfg: TrainConfig, device) -> tuple[float, list[bool]]:
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
            part_loss, part_exact = _packed_forward_backward(model, part, device, total)
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


def _packed_forward_backward(model, batch: list[Example], device, total_targets: int) -> tuple[float, list[bool]]:
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
    # No KV cache: transformers honours restarting position ids (no attention across examples) only without one.
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


def _starts(batch: list[Example]) -> list[int]:
    """Where each packed example begins in the row."""
    starts, at = [], 0
    for ex in batch:
        starts.append(at)
        at += len(ex[0])
    return starts
