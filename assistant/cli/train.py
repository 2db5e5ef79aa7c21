"""`assistant validate` and `assistant train`: a Q&A file checked, then trained into an adapter."""

from __future__ import annotations

import json
import sys

from assistant.cli import common
from assistant.cli.chat import current_policy
from assistant.cli.common import fail, open_assistant
from assistant.registry import AdapterError


def cmd_validate(args) -> int:
    from assistant.data import DataError, load_qa_file

    try:
        report = load_qa_file(args.file)
    except DataError as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}", 1)
    from assistant.training.augment import report_preview

    report.augmentation = report_preview(report.train)
    if not args.no_lint:
        from assistant.lint import lint_for_cli

        report.lint = lint_for_cli(report, args.data_dir)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 1 if report.blocking_problems() else 0


def parse_overrides(items: list[str]) -> dict:
    """KEY=VALUE strings -> typed TrainConfig overrides; unknown keys and bad values are ValueErrors."""
    from dataclasses import fields

    from assistant.training.config import TrainConfig

    types = {f.name: f.type for f in fields(TrainConfig)}
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise ValueError(f"--set needs KEY=VALUE with KEY one of: {', '.join(sorted(types))}")
        kind = str(types[key])
        try:
            if "bool" in kind:
                out[key] = value.strip().lower() in ("1", "true", "yes", "on")
            elif "tuple" in kind:
                out[key] = tuple(v.strip() for v in value.split(",") if v.strip())
            elif "float" in kind:
                out[key] = float(value)
            elif "int" in kind:
                out[key] = int(value)
            else:
                out[key] = value
        except ValueError:
            raise ValueError(f"--set {key}: '{value}' is not a valid {kind}") from None
    return out


def cmd_train(args) -> int:
    import threading
    from dataclasses import asdict
    from pathlib import Path

    from assistant.data import DataError, load_qa_file
    from assistant.registry import validate_name
    from assistant.stopping import stop_on_sigterm
    from assistant.training.config import preset
    from assistant.training.progress import TrainingCancelled
    from assistant.training.recipe import train

    def emit(event: dict) -> None:
        if args.progress_json:
            print(json.dumps(event), flush=True)

    def failed(message: str, code: int) -> int:
        emit({"phase": "error", "message": message})
        return common.fail(message, code)

    try:
        validate_name(args.name)  # before anything is read or loaded: the name becomes a directory
    except AdapterError as exc:
        return failed(str(exc), 2)
    try:
        overrides = parse_overrides(args.set)
        overrides["allow_conflicts"] = args.allow_conflicts or overrides.get("allow_conflicts", False)
        cfg = preset(args.preset, **overrides)
        report = load_qa_file(args.data, max_bytes=args.max_file_mb * 2**20)  # refuses an oversized file unread
        data_bytes = Path(args.data).read_bytes()
    except (DataError, ValueError) as exc:
        return failed(str(exc), 1)
    except OSError as exc:
        return failed(f"cannot read {args.data}: {exc.strerror or exc}", 1)
    problems = report.blocking_problems(allow_conflicts=cfg.allow_conflicts)
    if problems:
        if not args.progress_json:
            print(report.summary(), file=sys.stderr)
        return failed("cannot train on this file: " + "; ".join(problems), 1)
    cancel = threading.Event()
    assistant = open_assistant(args)  # until here a SIGTERM ends the process at once: nothing is staged yet
    # From here: stop at the next step, publish nothing, and exit within STOP_GRACE_S whatever happens.
    stop_on_sigterm(cancel, staging_dir=assistant.registry.staging_dir)

    def show(p) -> None:
        emit(asdict(p))
        if not args.json and not args.progress_json:
            loss = f" loss {p.loss:.3f}" if p.loss is not None else ""
            eta = f" eta {p.eta_s:.0f}s" if p.eta_s is not None and p.phase == "train" else ""
            print(f"[{p.phase}] {p.message}{loss}{eta}", file=sys.stderr, flush=True)

    try:
        policy = args.answer_policy or current_policy(assistant.registry, args.name)
        result = train(cfg, assistant.base, assistant.registry, report, args.name, evaluator=assistant.engine,
                       on_progress=show, cancel=cancel, data_bytes=data_bytes, description=args.description,
                       answer_policy=policy)
    except TrainingCancelled as exc:
        return failed(str(exc), 1)
    summary = {"adapter": result.adapter.describe(), "steps": result.steps,
               "train_seconds": result.train_seconds, "learned_at_step": result.learned_at_step}
    from assistant.training.evaluate import format_card

    if args.progress_json:
        emit({"phase": "result", **summary})
    elif args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"published {result.adapter.name} v{result.adapter.version} after {result.steps} steps "
              f"({result.train_seconds:.0f} s of training)")
        print(format_card(result.report_card))
    return 0
