"""`assistant chat`, `adapters`, `policy`: asking, listing, and how an adapter answers."""

from __future__ import annotations

import json
import sys

from assistant.cli.common import open_assistant, open_registry
from assistant.engines import GenerationSettings
from assistant.registry import AdapterError
from assistant.service import NO_ADAPTER_NAMES


def cmd_chat(args) -> int:
    from assistant.grounding.plan import describe_plan, is_auto

    settings = GenerationSettings(max_tokens=args.max_tokens, temperature=args.temperature)
    if args.adapter.strip().lower() not in (*NO_ADAPTER_NAMES, "auto"):
        open_registry(args).get(args.adapter.strip())  # a wrong name fails before the model loads
    assistant = open_assistant(args)
    planned = args.ground or is_auto(args.adapter)
    if args.adapter.strip().lower() not in NO_ADAPTER_NAMES:
        assistant.open_knowledge(owner=False)  # to check the answer; a temporary copy when an app owns it
    try:
        answer = assistant.answer([{"role": "user", "content": args.question}], args.adapter, settings, args.ground)
        if planned and not args.json:
            print(describe_plan(answer.plan), file=sys.stderr, flush=True)
        if args.json:
            answer.read()
            print(json.dumps(answer.describe(), ensure_ascii=False))
            return 0
        for piece in answer:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        for suggestion in answer.suggestions:
            print(f"did you mean: {suggestion}", file=sys.stderr)
        print(f"— {answer.label}", file=sys.stderr, flush=True)
    finally:
        assistant.close()
    return 0


def cmd_adapters(args) -> int:
    adapters = open_registry(args).list()
    if args.json:
        print(json.dumps([a.describe() for a in adapters], indent=2))
        return 0
    if not adapters:
        print("no adapters yet (train one with `assistant train`)")
    for a in adapters:
        state = "ok" if a.usable else f"UNUSABLE: {a.problem}"
        card = a.report_card or {}
        scores = " ".join(f"{k}={v:.0%}" for k, v in (card.get("after") or {}).items() if isinstance(v, float))
        print(f"{a.name:<24} v{a.version:<3} {a.source:<8} {a.answer_policy:<8} {state}  {scores}".rstrip())
    return 0


def current_policy(registry, name: str) -> str:
    """A new version answers as the one it replaces; a new name is open until its trainer says otherwise."""
    try:
        return registry.get(name).answer_policy
    except AdapterError:
        return "open"


def cmd_policy(args) -> int:
    """Change how an adapter answers, without retraining."""
    from assistant.trust import POLICY_HELP

    adapter = open_registry(args).set_answer_policy(args.name, args.policy)
    print(f"{adapter.name} now answers {args.policy}: {POLICY_HELP[args.policy]}")
    return 0
