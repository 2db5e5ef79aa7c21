"""`assistant ...` (and `python -m assistant ...`): the same API the UI uses, from a shell.

Exit codes: 0 success, 1 bad input data or a failed job, 2 a bad request (unknown adapter, bad
option). Errors are one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from assistant.base import BaseError
from assistant.engines import ENGINES, EngineError, GenerationSettings
from assistant.registry import AdapterError, UnknownAdapter


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=os.environ.get("ASSISTANT_BASE"),
                        help="Gemma 3 base: 'embedded' (default), a .gguf file, an HF directory, or a hub id")
    parser.add_argument("--data-dir", default=None, help="where published adapters live (default: var/)")
    parser.add_argument("--engine", choices=ENGINES, default=os.environ.get("ASSISTANT_ENGINE", "llamacpp"))
    parser.add_argument("--quant", default="auto", choices=("auto", "4bit", "bf16", "fp32"),
                        help="precision for --engine hf (auto: 4bit on CUDA, bf16 on CPUs that have it, else fp32)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="ask one question and print only the answer")
    _common(chat)
    chat.add_argument("question")
    chat.add_argument("--adapter", default="none", help="adapter name, or 'none' for the bare base")
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.0)

    adapters = sub.add_parser("adapters", help="list adapters and whether each can be used")
    _common(adapters)
    adapters.add_argument("--json", action="store_true")

    validate = sub.add_parser("validate", help="check a Q&A file and print its report")
    validate.add_argument("file")
    validate.add_argument("--json", action="store_true")

    provision = sub.add_parser("provision", help="prepare the base (assemble and convert once)")
    provision.add_argument("--base", default=os.environ.get("ASSISTANT_BASE"))

    serve = sub.add_parser("serve", help="serve the web app")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UnknownAdapter as exc:
        return _fail(str(exc), 2)
    except (AdapterError, EngineError, BaseError, ValueError) as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    print(f"assistant: {message}", file=sys.stderr)
    return code


def _open(args):
    from assistant.host import Assistant

    options = {"quant": args.quant} if args.engine == "hf" else {}
    return Assistant.open(args.base, engine=args.engine, data_dir=args.data_dir, **options)


def cmd_chat(args) -> int:
    settings = GenerationSettings(max_tokens=args.max_tokens, temperature=args.temperature)
    if args.adapter.strip().lower() not in ("", "none", "base"):
        _registry(args).get(args.adapter.strip())  # a wrong name fails before the model loads
    assistant = _open(args)
    for piece in assistant.chat([{"role": "user", "content": args.question}], args.adapter, settings):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _registry(args):
    """The registry alone: listing and name checks need the base's identity, not a loaded engine."""
    from assistant.base import resolve_base
    from assistant.paths import SHIPPED_ADAPTERS, default_data_dir
    from assistant.registry import Registry

    return Registry(resolve_base(args.base).sha256, args.data_dir or default_data_dir(), SHIPPED_ADAPTERS)


def cmd_adapters(args) -> int:
    adapters = _registry(args).list()
    if args.json:
        print(json.dumps([a.describe() for a in adapters], indent=2))
        return 0
    if not adapters:
        print("no adapters yet (train one with `assistant train`)")
    for a in adapters:
        state = "ok" if a.usable else f"UNUSABLE: {a.problem}"
        card = a.report_card or {}
        scores = " ".join(f"{k}={v:.0%}" for k, v in (card.get("after") or {}).items() if isinstance(v, float))
        print(f"{a.name:<24} v{a.version:<3} {a.source:<8} {state}  {scores}".rstrip())
    return 0


def cmd_validate(args) -> int:
    from assistant.data import DataError, load_qa_file

    try:
        report = load_qa_file(args.file)
    except DataError as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}", 1)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 1 if report.blocking_problems() else 0


def cmd_provision(args) -> int:
    from assistant.base import resolve_base

    base = resolve_base(args.base)
    print(f"base: {base.name}\nsha256: {base.sha256}")
    print(f"hf copy: {base.ensure_hf_dir()}")
    return 0


def cmd_serve(args) -> int:
    from ui.app import serve

    serve(_open(args), host=args.host, port=args.port)
    return 0


COMMANDS = {"chat": cmd_chat, "adapters": cmd_adapters, "validate": cmd_validate,
            "provision": cmd_provision, "serve": cmd_serve}

if __name__ == "__main__":
    sys.exit(main())
