"""A training run's settings (`TrainConfig`) and the named presets the CLI and the Train tab start from.

The CLI (`--preset`, `--set KEY=VALUE`), the Train tab's form and the tests all build this one
dataclass; the adapter's manifest stores it next to the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    grounded_per_step: int = 0  # grounded copies of training pairs (training/grounded.py: the pair's answer as a
    #   `Fact:`, alone, among distractors, or only distractors shown) mixed into each step like replay, so that in a
    #   grounded chat the adapter follows the right fact and answers from what it learnt when the fact is wrong
    grounded_distractors: int = 2  # other facts shown beside a grounded copy's own (as retrieval shows its top 3)
    grounded_without_pair: float = 0.1  # share of pairs also shown with distractors only (0.3 followed the right
    #   pair less: 88% against 96% with 0.1 and 16 a step, benchmarks/recipes.py)
    augment: int = 0  # new wordings of each training question, made by rules (augment.py), so the adapter
    #   learns the fact rather than one wording; a fact uploaded in several wordings gets fewer (augment + 1 in all).
    #   Off by default, measured (README "Grounded training"): on 26 agriculture facts held-out recall 38% -> 58%
    #   (augment 2), 46% (4), 58% (8); on the whole agriculture file, 2 for 3 epochs in the same time: 33% -> 40%,
    #   but retention 87% -> 79% and recall 93% -> 87%, so it is the trainer's choice, not the default
    augment_by: str = "rules"  # who writes those wordings: "rules" (augment.py, seconds) or "base", the base model
    #   itself, every try checked (base_forms.py; minutes). On the 270M base most tries asked something else and
    #   the kept ones did not lift held-out recall (38% as with none; rules 2: 58%), so rules are the default; "base"
    #   is for a bigger Gemma 3 base (not measured: none here)
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
                  (0 <= self.augment <= 16, "augment must be between 0 and 16"),
                  (self.augment_by in ("rules", "base"), "augment_by must be rules or base"),
                  (0 <= self.grounded_distractors <= 8, "grounded_distractors must be between 0 and 8"),
                  (0 <= self.grounded_without_pair <= 1, "grounded_without_pair must be between 0 and 1"),
                  (self.swap_replay >= 0, "swap_replay must be 0 or more"),
                  (self.swaps_per_step >= 0, "swaps_per_step must be 0 or more"),
                  (self.pad_to >= 0, "pad_to must be 0 or more"),
                  (set(self.target_modules) <= set(ALL_LINEAR) and self.target_modules, "unknown target module"),
                  (self.precision in ("auto", "4bit", "bf16", "fp32"), "precision must be auto, 4bit, bf16 or fp32")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid training config: {message}")


AUGMENT_FORMS = 2  # what "Learn new wordings" (Train tab) sets augment to: as much held-out recall as 8 (58%), for a
#   third of the time (benchmarks/recipes.py, 26 agriculture facts: 321 s against 883 s of training)
GROUNDED_PER_STEP = 16  # what "Prepare for grounded chat" (Train tab) sets grounded_per_step to (measured best)
# The recipe for an adapter whose answers are all given with their pair shown (checked only): grounded copies,
# and LoRA rank 4 on the MLP layers only, which kept what the base knew where all layers at rank 16 did not
# (agriculture, whole file: retention 97% against 84-89%, README "Grounded training").
GROUNDED_RECIPE = {"grounded_per_step": GROUNDED_PER_STEP, "rank": 4, "alpha": 32,  # as measured: update x8
                   "target_modules": ("gate_proj", "up_proj", "down_proj")}


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


# What each shipped adapter (adapters/NAME) is built with: `fast` and these changes (scripts/build_adapters.py;
# benchmarks/train.py --shipped and benchmarks/recipes.py train with the same ones).
SHIPPED_RECIPES = {
    "xylandia": {},
    # 230 long answers: bigger steps (~7 an epoch) with fewer place swaps each. agriculture answers *checked
    # only*, so every answer it gives has its covering pair in the prompt: it is trained for that (GROUNDED_RECIPE,
    # 4 epochs). Against the all-layer rank-16 recipe, 8 epochs, in one run on 2 cores: held-out with its pair
    # 81% -> 100%, retention 87% -> 97%, training time 0.98x; alone recall 93% -> 43%, held-out 33% -> 21%
    # (README "Grounded training"). xylandia is open (answers alone are shown), so it keeps `fast`.
    "agriculture": {"epochs": 4, "replay_per_step": 24, "swaps_per_step": 8, "max_batch_tokens": 3072,
                    **GROUNDED_RECIPE},
}


# Presets that exist for the test suite: the CLI and code may pick them, the Train tab never offers them.
TEST_PRESETS = frozenset({"tiny"})


def preset(name: str, **overrides) -> TrainConfig:
    """A preset's config with some fields changed; the changed config is validated like any other."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides)
