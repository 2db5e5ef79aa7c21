"""Fine-tuning: a validated Q&A file in, a published adapter with a report card out.

Read in this order:
- `config.py`: `TrainConfig` (one comment per field, validated) and the presets `seed`, `fast`, `tiny`;
- `recipe.py`: `train(cfg, ...) -> TrainResult`, top to bottom: set up, fit, evaluate, publish;
- `progress.py`: what a run reports while it runs (`Progress`) and how its caller stops it;
- `replay.py`: the bare base's own answers, mixed into every step so the adapter keeps them;
- `steps.py`: examples as token ids, batching, and one step's forward and backward (padded or packed);
- `evaluate.py`: the report card (recall, held-out recall, retention) and how an answer is scored.
"""
