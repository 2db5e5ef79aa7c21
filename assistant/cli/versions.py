"""`assistant adapters list|promote|rollback|next NAME [VERSION]`: an adapter's versions, which one
serves, and its next version trained and gated.

The CLI has no roles: whoever runs it has the data directory in hand (the users file's roles are
the web app's and the API's; there, only trainers may do this).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from assistant.cli.common import fail, open_assistant, open_registry


def cmd_versions(args) -> int:
    """`adapters list NAME`, `promote NAME VERSION`, `rollback NAME VERSION`, `next NAME`."""
    from assistant.serving import describe_versions

    if not args.name:
        return fail(f"adapters {args.action} needs the adapter's name", 2)
    if args.action in ("promote", "rollback"):
        if args.version is None:
            return fail(f"adapters {args.action} needs NAME and VERSION, e.g. "
                        f"`assistant adapters {args.action} {args.name} 2`", 2)
        registry = open_registry(args)
        try:
            adapter = getattr(registry, args.action)(args.name.strip(), args.version, by=args.by)
        except OSError as exc:
            return fail(f"could not record the serving version: {exc.strerror or exc}; nothing changed", 1)
        print(f"{adapter.name} v{adapter.version} serves now "
              f"({'promoted' if args.action == 'promote' else 'rolled back'}; no retraining)")
        _mark(registry, adapter)
        return 0
    if args.version is not None:
        return fail(f"adapters {args.action} takes no VERSION", 2)
    if args.action == "next":
        return _next(args)
    rows = describe_versions(open_registry(args), args.name.strip())
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(format_row(row))
    return 0


def _mark(registry, adapter) -> None:
    """The queue says what the version now serving holds: its questions show answered to their
    askers, and those only a newer version held (a rollback) are answered-but-untrained again."""
    from assistant.store import Store, StoreError
    from assistant.training.lineage import sync_queue

    try:
        marked, reopened = sync_queue(Store.open(registry.data_dir), registry, adapter)
    except (ValueError, OSError, StoreError) as exc:  # it serves all the same; the queue is behind
        print(f"assistant: v{adapter.version} serves, but the questions to answer could not be updated: {exc}",
              file=sys.stderr)
        return
    if reopened:
        print(f"{reopened} answered question{'s' if reopened != 1 else ''} that v{adapter.version} does not hold "
              "will be trained into the next version again", file=sys.stderr)


def format_row(row: dict) -> str:
    after = (row.get("report_card") or {}).get("after") or {}
    scores = " ".join(f"{k}={v:.0%}" for k, v in after.items() if isinstance(v, float))
    state = row["status"] if row["usable"] else f"UNUSABLE: {row['problem']}"
    decision = row.get("decision")
    gate = ""
    if decision:
        gate = " gate: passed" if decision.get("passed") else " gate: refused (" + "; ".join(decision["reasons"]) + ")"
    added = row.get("lineage") or {}
    data = f" +{added['added']} added, {added['replaced']} replaced" if added else ""
    return f"{row['name']:<24} v{row['version']:<3} {row['source']:<8} {state:<9} {scores}{data}{gate}".rstrip()


def _next(args) -> int:
    """Train NAME's next version from its serving version and the answered pairs, gate, promote."""
    import threading
    from dataclasses import asdict

    from assistant.stopping import stop_on_sigterm
    from assistant.training.next_version import clean_pairs, next_version
    from assistant.training.progress import TrainingCancelled

    def emit(event: dict) -> None:
        if args.progress_json:
            print(json.dumps(event), flush=True)

    def failed(message: str, code: int) -> int:
        emit({"phase": "error", "message": message})
        return fail(message, code)

    name = args.name.strip()
    open_registry(args).get(name)  # an unknown name fails before the model loads
    pairs, mark = None, None
    if args.pairs:
        try:
            pairs = json.loads(Path(args.pairs).read_text(encoding="utf-8"))
        except OSError as exc:
            return failed(f"cannot read {args.pairs}: {exc.strerror or exc}", 1)
        except ValueError as exc:
            return failed(f"{args.pairs} is not JSON ({exc})", 1)
        try:
            clean_pairs(pairs)  # a bad file is refused before the model loads
        except ValueError as exc:
            return failed(f"{args.pairs}: {exc}", 1)
    assistant = open_assistant(args)
    if pairs is None:
        try:
            from assistant import questions
        except ImportError:
            return failed("no --pairs file given, and this install has no trainers' queue to take them from", 2)
        try:
            pairs = questions.answered_pairs(assistant.store, name)
        except Exception as exc:  # a database another release left, a locked file: one line, not a traceback
            return failed(f"could not read the answered questions of the trainers' queue ({exc})", 1)

        def mark(ids, version):
            _mark(assistant.registry, assistant.registry.get_version(name, version))

    cancel = threading.Event()
    stop_on_sigterm(cancel, staging_dir=assistant.registry.staging_dir)

    def show(p) -> None:
        emit(asdict(p))
        if not args.json and not args.progress_json:
            print(f"[{p.phase}] {p.message}", file=sys.stderr, flush=True)

    try:
        result = next_version(assistant, name, pairs, by=args.by, on_progress=show, cancel=cancel, mark_trained=mark)
    except TrainingCancelled as exc:
        return failed(str(exc), 1)
    except ValueError as exc:
        return failed(str(exc), 1)
    summary = {"adapter": result.adapter.describe(), "decision": result.decision, "promoted": result.promoted,
               "steps": result.train.steps, "train_seconds": result.train.train_seconds}
    if args.progress_json:
        emit({"phase": "result", **summary})
    elif args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(result.summary())
    return 0
