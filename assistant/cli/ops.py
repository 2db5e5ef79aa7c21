"""`assistant export`, `provision`, `serve`, `user`: running the product and its people."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from assistant.cli.common import fail, open_assistant, open_registry, resolve_base_of


def cmd_export(args) -> int:
    from pathlib import Path

    from assistant.export import FORMATS, ExportError, export_adapter

    if args.format not in FORMATS:
        return fail(f"unknown export format '{args.format}' (choose from: {', '.join(FORMATS)})", 2)
    registry = open_registry(args)
    adapter = registry.get(args.adapter.strip())  # an unknown name fails here, exit 2
    base = resolve_base_of(args)
    out = Path(args.out) if args.out else registry.data_dir / "exports"

    def show(phase: str, message: str) -> None:
        if args.progress_json:
            print(json.dumps({"phase": phase, "message": message}), flush=True)
        elif not args.json:
            print(f"[{phase}] {message}", file=sys.stderr, flush=True)

    try:
        result = export_adapter(base, adapter, args.format, out, verify=not args.no_verify, progress=show)
    except ExportError as exc:
        if args.progress_json:
            print(json.dumps({"phase": "error", "message": str(exc)}), flush=True)
        return fail(str(exc), 1)
    if args.progress_json:  # the app's job runner reads this: where the files are, and the verdict
        print(json.dumps({"phase": "result", "info": result.info, "path": str(result.path),
                          "files": [str(p) for p in result.files], "passed": result.passed}), flush=True)
    elif args.json:
        print(json.dumps(result.info, indent=2))
    else:
        from assistant.export import format_verification

        print(format_verification(result.info.get("verification")))
        for path in result.files:
            print(path)
    if result.passed is False:
        return fail(f"export verification FAILED: {result.path} is not a faithful copy of the adapter "
                     "(recall trails the peft model by more than 10 points); do not use it", 1)
    return 0


def cmd_provision(args) -> int:
    from assistant.base import resolve_base

    base = resolve_base(args.base)
    print(f"base: {base.name}\nsha256: {base.sha256}")
    print(f"hf copy: {base.ensure_hf_dir()}")
    return 0


def cmd_serve(args) -> int:
    from assistant.auth import AuthError, Users
    from ui.app import serve
    from ui.clients import parse_network

    users = None
    if args.auth:
        try:
            users = Users.load(Path(args.auth))
        except AuthError as exc:
            return fail(str(exc), 2)
    elif args.host not in ("127.0.0.1", "localhost", "::1"):
        return fail(f"refusing to listen on {args.host} without --auth: anyone on the network could train, "
                     "export and delete adapters (create a users file with `assistant user add`)", 2)
    try:
        trusted = [str(parse_network(spec)) for spec in args.trusted_proxy]
    except ValueError as exc:
        return fail(str(exc), 2)
    serve(open_assistant(args), host=args.host, port=args.port, base_spec=args.base, users=users,
          max_upload_mb=args.max_upload_mb, trusted_proxies=trusted)
    return 0


def cmd_user(args) -> int:
    import getpass

    from assistant.auth import AuthError, add_user

    if args.action == "key":
        return _user_key(args)

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return fail("the passwords differ; nothing was changed", 2)
    try:
        add_user(Path(args.file), args.name, args.role, password)
    except AuthError as exc:
        return fail(str(exc), 2)
    print(f"{args.name.strip().lower()} ({args.role}) saved in {args.file}")
    return 0


def _user_key(args) -> int:
    """Issue (or --revoke) a user's API key: printed once on stdout, stored only as its hash."""
    from assistant.auth import AuthError, issue_key, normal_name, revoke_key

    name = normal_name(args.name)
    try:
        if args.revoke:
            had = revoke_key(Path(args.file), name)
            print(f"{name}: API key revoked" if had else f"{name} had no API key; nothing changed")
            return 0
        key = issue_key(Path(args.file), name)
    except AuthError as exc:
        return fail(str(exc), 2)
    print(key)  # alone on stdout, for scripts; the rest goes to stderr
    print(f"API key for {name} saved (as a hash) in {args.file}; it is shown only now, and replaces any "
          "earlier key. A running app takes it at its next API request.",
          file=sys.stderr)
    return 0
