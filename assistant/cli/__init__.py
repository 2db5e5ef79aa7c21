"""`assistant ...` (and `python -m assistant ...`): the same API the UI uses, from a shell.

Exit codes: 0 success, 1 bad input data or a failed job, 2 a bad request (unknown adapter, bad
option). Errors are one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from assistant.base import BaseError
from assistant.cli.chat import cmd_adapters, cmd_chat, cmd_policy
from assistant.cli.common import fail
from assistant.cli.ops import cmd_export, cmd_provision, cmd_serve, cmd_user
from assistant.cli.questions import add_parsers as add_question_parsers
from assistant.cli.questions import cmd_backup, cmd_questions
from assistant.cli.train import cmd_train, cmd_validate, parse_overrides
from assistant.cli.versions import cmd_versions
from assistant.engines import ENGINES, SERVER_KINDS, EngineError
from assistant.registry import AdapterError, UnknownAdapter

__all__ = ["build_parser", "main", "parse_overrides"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=os.environ.get("ASSISTANT_BASE"),
                        help="Gemma 3 base: 'embedded' (default), a .gguf file, an HF directory, or a hub id")
    parser.add_argument("--data-dir", default=None, help="where published adapters live (default: var/)")
    parser.add_argument("--engine", choices=ENGINES, default=os.environ.get("ASSISTANT_ENGINE", "llamacpp"),
                        help="llamacpp (in-process, default), hf (transformers), llama-server (an app-managed "
                             "llama-server, built by `make llama-server`), server (one you run: --server-url)")
    parser.add_argument("--server-url", default=os.environ.get("ASSISTANT_SERVER_URL"),
                        help="--engine server: the inference server's URL, e.g. http://10.0.0.5:8080")
    parser.add_argument("--server-kind", default="llama-server", choices=SERVER_KINDS,
                        help="--engine server: what the server is")
    parser.add_argument("--server-path-map", default=os.environ.get("ASSISTANT_SERVER_PATH_MAP"), metavar="LOCAL=REMOTE",
                        help="--server-kind vllm: the server reads this app's adapters under REMOTE where they are "
                             "under LOCAL here (default: the same paths). A server's --api-key (either kind): "
                             "ASSISTANT_SERVER_API_KEY")
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

    adapters = sub.add_parser("adapters", help="list adapters (or one adapter's versions), make a version serve, "
                              "train the next version")
    _common(adapters)
    adapters.add_argument("action", nargs="?", default="list", choices=("list", "promote", "rollback", "next"),
                          help="list (every adapter, or NAME's versions), promote or rollback NAME VERSION (make it "
                               "serve, no retraining), next NAME (train, gate, promote if nothing regresses)")
    adapters.add_argument("name", nargs="?")
    adapters.add_argument("version", nargs="?", help="a version number, e.g. 2 or v2")
    adapters.add_argument("--pairs", default=None, help="next: a JSON list of {question, answer} to add "
                          "(default: the answered questions of the trainers' queue)")
    adapters.add_argument("--by", default="", help="who made the change (recorded with it)")
    adapters.add_argument("--json", action="store_true")
    adapters.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)  # for the app's job runner

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
    add_question_parsers(sub)  # questions list|answer|dismiss, backup
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UnknownAdapter as exc:
        return fail(str(exc), 2)
    except (AdapterError, EngineError, BaseError, ValueError) as exc:
        return fail(str(exc), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def _adapters(args) -> int:
    return cmd_adapters(args) if args.action == "list" and not args.name else cmd_versions(args)


COMMANDS = {"policy": cmd_policy, "chat": cmd_chat, "adapters": _adapters, "validate": cmd_validate, "train": cmd_train,
            "provision": cmd_provision, "serve": cmd_serve, "export": cmd_export, "user": cmd_user,
            "questions": cmd_questions, "backup": cmd_backup}

if __name__ == "__main__":
    sys.exit(main())
