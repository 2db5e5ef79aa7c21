"""What every command shares: opening the service or the registry, and failing with one line."""

from __future__ import annotations

import sys


def fail(message: str, code: int) -> int:
    print(f"assistant: {message}", file=sys.stderr)
    return code


def open_assistant(args):
    from assistant.service import Assistant

    options = {"quant": args.quant} if args.engine == "hf" else {}
    if args.engine == "server":
        options = {"server_url": getattr(args, "server_url", None), "server_kind": getattr(args, "server_kind", None),
                   "server_path_map": getattr(args, "server_path_map", None)}
    return Assistant.open(args.base, engine=args.engine, data_dir=args.data_dir, **options)


def open_registry(args):
    """The registry alone: listing and name checks need the base's identity, not a loaded engine."""
    from assistant.base import resolve_base
    from assistant.paths import SHIPPED_ADAPTERS, default_data_dir
    from assistant.registry import Registry

    return Registry(resolve_base(args.base).sha256, args.data_dir or default_data_dir(), SHIPPED_ADAPTERS)


def resolve_base_of(args):
    from assistant.base import resolve_base

    return resolve_base(args.base)
