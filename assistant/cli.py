"""`assistant ...` (and `python -m assistant ...`): the same API the UI uses, from a shell.

Exit codes: 0 success, 1 bad input data or a failed job, 2 a bad request (unknown adapter, bad
option). Errors are one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    chat.add_argument("--adapter", default="none",
                      help="adapter name, 'none' for the bare base, or 'auto' to route to the nearest adapter's Q&A")
    chat.add_argument("--ground", action="store_true",
                      help="put the adapter's nearest indexed Q&A pairs into the prompt (sources go to stderr)")
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.add_argument("--json", action="store_true",
                      help="print one JSON object: answer, adapter, version, checked, sources, suggestions, label")

    adapters = sub.add_parser("adapters", help="list adapters and whether each can be used")
    _common(adapters)
    adapters.add_argument("--json", action="store_true")

    policy = sub.add_parser("policy", help="set how an adapter answers (checked only, or open), without retraining")
    _common(policy)
    policy.add_argument("name")
    policy.add_argument("policy", choices=("checked", "open"))

    validate = sub.add_parser("validate", help="check a Q&A file and print its report")
    validate.add_argument("file")
    validate.add_argument("--json", action="store_true")
    validate.add_argument("--data-dir", default=None, help="adapters to lint against (default: var/)")
    validate.add_argument("--no-lint", action="store_true", help="skip the similar-question lint (no embedding model)")

    train = sub.add_parser("train", help="fine-tune an adapter from a Q&A file, evaluate it, publish it")
    _common(train)
    train.add_argument("--data", required=True, help="CSV, XLSX, JSONL or JSON with question/answer columns")
    train.add_argument("--name", required=True, help="adapter name (a new version if it exists)")
    train.add_argument("--preset", default="fast", help="fast (default), seed (the proof of concept), tiny")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one training setting, e.g. --set learning_rate=5e-4 (repeatable)")
    train.add_argument("--description", default="")
    train.add_argument("--answer-policy", choices=("checked", "open"), default=None,
                       help="checked: answer only what the Q&A covers (advice people act on); open: answer everything, "
                            "marking what the Q&A does not cover as not checked (default: the name's current policy, "
                            "else open)")
    train.add_argument("--allow-conflicts", action="store_true", help="train although a question has two answers")
    train.add_argument("--max-file-mb", type=int, default=20, help="largest Q&A file accepted (the app passes its "
                       "--max-upload-mb, so a file it accepted is never refused here)")
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)  # for the app's job runner

    export = sub.add_parser("export", help="export an adapter: LoRA GGUF, merged GGUF (f16/q8_0/q4_k_m) or merged HF")
    _common(export)
    export.add_argument("--adapter", required=True, help="adapter name (its newest usable version)")
    export.add_argument("--format", required=True, help="lora-gguf, gguf-f16, gguf-q8_0, gguf-q4_k_m or hf")
    export.add_argument("--out", default=None, help="exports directory (default: <data-dir>/exports)")
    export.add_argument("--no-verify", action="store_true", help="skip the comparison with the peft model")
    export.add_argument("--json", action="store_true", help="print export.json")
    export.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)  # for the app's job runner

    provision = sub.add_parser("provision", help="prepare the base (assemble and convert once)")
    provision.add_argument("--base", default=os.environ.get("ASSISTANT_BASE"))

    serve = sub.add_parser("serve", help="serve the web app")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; others need --auth)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--auth", default=os.environ.get("ASSISTANT_AUTH"),
                       help="users file (see `assistant user add`): log-in required, roles farmer and trainer")
    serve.add_argument("--max-upload-mb", type=int, default=20, help="largest file a user may upload")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                       help="a reverse proxy (address or network, repeatable) whose X-Forwarded-For names the "
                            "client; without one, the client is the connection's peer")

    user = sub.add_parser("user", help="add a user to a users file (for serve --auth) or change their password "
                          "(add); issue or revoke their API key (key)")
    user.add_argument("action", choices=["add", "key"])
    user.add_argument("name")
    user.add_argument("--revoke", action="store_true", help="with key: remove the user's API key")
    user.add_argument("--role", default="farmer", help="farmer (chats) or trainer (also trains, exports, deletes)")
    user.add_argument("--file", required=True, help="the users file to create or update")
    user.add_argument("--password-stdin", action="store_true", help="read the password from stdin (for scripts)")
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
    from assistant.service import Assistant

    options = {"quant": args.quant} if args.engine == "hf" else {}
    return Assistant.open(args.base, engine=args.engine, data_dir=args.data_dir, **options)


def cmd_chat(args) -> int:
    from assistant.grounding.plan import describe_plan, is_auto

    settings = GenerationSettings(max_tokens=args.max_tokens, temperature=args.temperature)
    if args.adapter.strip().lower() not in ("", "none", "base", "auto"):
        _registry(args).get(args.adapter.strip())  # a wrong name fails before the model loads
    assistant = _open(args)
    planned = args.ground or is_auto(args.adapter)
    if args.adapter.strip().lower() not in ("", "none", "base"):
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
        print(f"{a.name:<24} v{a.version:<3} {a.source:<8} {a.answer_policy:<8} {state}  {scores}".rstrip())
    return 0


def cmd_validate(args) -> int:
    from assistant.data import DataError, load_qa_file

    try:
        report = load_qa_file(args.file)
    except DataError as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}", 1)
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


def _current_policy(registry, name: str) -> str:
    """A new version answers as the one it replaces; a new name is open until its trainer says otherwise."""
    try:
        return registry.get(name).answer_policy
    except AdapterError:
        return "open"


def cmd_policy(args) -> int:
    """Change how an adapter answers, without retraining."""
    from assistant.trust import POLICY_HELP

    adapter = _registry(args).set_answer_policy(args.name, args.policy)
    print(f"{adapter.name} now answers {args.policy}: {POLICY_HELP[args.policy]}")
    return 0


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

    def fail(message: str, code: int) -> int:
        emit({"phase": "error", "message": message})
        return _fail(message, code)

    try:
        validate_name(args.name)  # before anything is read or loaded: the name becomes a directory
    except AdapterError as exc:
        return fail(str(exc), 2)
    try:
        overrides = parse_overrides(args.set)
        overrides["allow_conflicts"] = args.allow_conflicts or overrides.get("allow_conflicts", False)
        cfg = preset(args.preset, **overrides)
        report = load_qa_file(args.data, max_bytes=args.max_file_mb * 2**20)  # refuses an oversized file unread
        data_bytes = Path(args.data).read_bytes()
    except (DataError, ValueError) as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        return fail(f"cannot read {args.data}: {exc.strerror or exc}", 1)
    problems = report.blocking_problems(allow_conflicts=cfg.allow_conflicts)
    if problems:
        if not args.progress_json:
            print(report.summary(), file=sys.stderr)
        return fail("cannot train on this file: " + "; ".join(problems), 1)
    cancel = threading.Event()
    assistant = _open(args)  # until here a SIGTERM ends the process at once: nothing is staged yet
    # From here: stop at the next step, publish nothing, and exit within STOP_GRACE_S whatever happens.
    stop_on_sigterm(cancel, staging_dir=assistant.registry.staging_dir)

    def show(p) -> None:
        emit(asdict(p))
        if not args.json and not args.progress_json:
            loss = f" loss {p.loss:.3f}" if p.loss is not None else ""
            eta = f" eta {p.eta_s:.0f}s" if p.eta_s is not None and p.phase == "train" else ""
            print(f"[{p.phase}] {p.message}{loss}{eta}", file=sys.stderr, flush=True)

    try:
        policy = args.answer_policy or _current_policy(assistant.registry, args.name)
        result = train(cfg, assistant.base, assistant.registry, report, args.name, evaluator=assistant.engine,
                       on_progress=show, cancel=cancel, data_bytes=data_bytes, description=args.description,
                       answer_policy=policy)
    except TrainingCancelled as exc:
        return fail(str(exc), 1)
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


def cmd_export(args) -> int:
    from pathlib import Path

    from assistant.export import FORMATS, ExportError, export_adapter

    if args.format not in FORMATS:
        return _fail(f"unknown export format '{args.format}' (choose from: {', '.join(FORMATS)})", 2)
    registry = _registry(args)
    adapter = registry.get(args.adapter.strip())  # an unknown name fails here, exit 2
    base = _resolve_base(args)
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
        return _fail(str(exc), 1)
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
        return _fail(f"export verification FAILED: {result.path} is not a faithful copy of the adapter "
                     "(recall trails the peft model by more than 10 points); do not use it", 1)
    return 0


def _resolve_base(args):
    from assistant.base import resolve_base

    return resolve_base(args.base)


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
            return _fail(str(exc), 2)
    elif args.host not in ("127.0.0.1", "localhost", "::1"):
        return _fail(f"refusing to listen on {args.host} without --auth: anyone on the network could train, "
                     "export and delete adapters (create a users file with `assistant user add`)", 2)
    try:
        trusted = [str(parse_network(spec)) for spec in args.trusted_proxy]
    except ValueError as exc:
        return _fail(str(exc), 2)
    serve(_open(args), host=args.host, port=args.port, base_spec=args.base, users=users,
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
            return _fail("the passwords differ; nothing was changed", 2)
    try:
        add_user(Path(args.file), args.name, args.role, password)
    except AuthError as exc:
        return _fail(str(exc), 2)
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
        return _fail(str(exc), 2)
    print(key)  # alone on stdout, for scripts; the rest goes to stderr
    print(f"API key for {name} saved (as a hash) in {args.file}; it is shown only now, and replaces any "
          "earlier key. A running app takes it at its next API request.",
          file=sys.stderr)
    return 0


COMMANDS = {"policy": cmd_policy, "chat": cmd_chat, "adapters": cmd_adapters, "validate": cmd_validate, "train": cmd_train,
            "provision": cmd_provision, "serve": cmd_serve, "export": cmd_export, "user": cmd_user}

if __name__ == "__main__":
    sys.exit(main())
