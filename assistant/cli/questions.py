"""`assistant questions list|answer|dismiss|reopen` (the trainers' queue from a shell) and `assistant backup`.

Neither needs the model: they open the data directory's database only, so they run beside the app
(SQLite's busy timeout lets the two take turns). A decision on an item another trainer decided
meanwhile is refused with what that trainer did (exit 1), nothing overwritten.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from assistant.cli.common import fail


def add_parsers(sub) -> None:
    questions = sub.add_parser("questions", help="the trainers' queue: questions without a checked answer and "
                               "flagged answers (list, answer, dismiss)")
    actions = questions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="items, the most asked first")
    listing.add_argument("--status", default="open", choices=("open", "answered", "dismissed", "trained", "all"))
    listing.add_argument("--adapter", default=None, help="only this adapter's items")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    answering = actions.add_parser("answer", help="answer an open item: it becomes a Q&A pair of the next version")
    answering.add_argument("item", help="the item's number (from `questions list`)")
    answering.add_argument("answer", nargs="?", default=None, help="the answer (or --use-correction)")
    answering.add_argument("--use-correction", action="store_true", help="accept the newest correction a farmer suggested")
    dismissing = actions.add_parser("dismiss", help="dismiss an open item with a reason")
    dismissing.add_argument("item")
    dismissing.add_argument("reason")
    reopening = actions.add_parser("reopen", help="open an answered, trained or dismissed item again (to correct "
                                   "its answer: the text stays as the starting point)")
    reopening.add_argument("item")
    for parser in (listing, answering, dismissing, reopening):
        parser.add_argument("--data-dir", default=None, help="the data directory (default: var/)")
    for parser in (answering, dismissing):
        parser.add_argument("--also", default="", metavar="ID,ID",
                            help="other open items that ask the same thing in other words: decided alike")
    for parser in (answering, dismissing, reopening):
        parser.add_argument("--by", default=None, help="who decides (default: your login name)")

    backup = sub.add_parser("backup", help="a consistent copy of the database (chats, feedback, queue), "
                            "safe while the app runs")
    backup.add_argument("path", help="the file to write, or a directory to write assistant.sqlite3 into")
    backup.add_argument("--data-dir", default=None)


def cmd_questions(args) -> int:
    from assistant import questions
    from assistant.questions import QueueError
    from assistant.store import StoreError

    try:
        store = _store(args)
        if args.action == "list":
            return _list(store, args)
        by = args.by or f"cli:{getpass.getuser()}"
        if args.action == "answer":
            if args.use_correction == (args.answer is not None):
                return fail("give the answer, or --use-correction (one of them)", 2)
            text = args.answer
            if args.use_correction:
                text = questions.get(store, args.item).correction
                if not text:
                    return fail(f"item {args.item} has no suggested correction; give the answer yourself", 1)
            item = questions.answer(store, args.item, text, by)
        elif args.action == "reopen":
            item = questions.reopen(store, args.item, by)
        else:
            item = questions.dismiss(store, args.item, args.reason, by)
    except (QueueError, StoreError) as exc:
        return fail(str(exc), 1)
    print(f"item {item.id} {'reopened' if item.status == 'open' else item.status} by {item.decided_by}: {item.question}")
    also = [i for i in getattr(args, "also", "").replace(" ", "").split(",") if i]
    alike, refused = questions.decide_alike(store, item, also, by)
    for other in alike:
        print(f"item {other.id} {other.status} alike: {other.question}")
    for reason in refused:  # decided meanwhile, or no such item: the others still went
        print(f"assistant: {reason}", file=sys.stderr)
    return 1 if refused else 0


def cmd_backup(args) -> int:
    from assistant.store import StoreError

    try:
        written = _store(args).backup(Path(args.path))
    except StoreError as exc:
        return fail(str(exc), 1)
    print(f"backup written: {written}")
    return 0


def _store(args):
    """The data directory's database; a directory without one is a mistyped --data-dir, not an empty queue."""
    from assistant.paths import default_data_dir
    from assistant.store import DB_FILE, Store, StoreError

    data_dir = Path(args.data_dir or default_data_dir())
    if not (data_dir / DB_FILE).is_file():
        raise StoreError(f"there is no database in {data_dir} (is --data-dir right? the app creates "
                         f"{DB_FILE} when it first runs)")
    return Store.open(data_dir)


def _list(store, args) -> int:
    from assistant import questions

    found = questions.items(store, None if args.status == "all" else args.status, args.adapter)
    for item in found:
        if args.json:
            print(json.dumps({"id": item.id, "adapter": item.adapter, "question": item.question, "status": item.status,
                              "askers": item.askers, "flagged": item.flagged, "first_asked": item.first_asked,
                              "last_asked": item.last_asked, "correction": item.correction, "answer": item.answer,
                              "reason": item.reason, "decided_by": item.decided_by, "trained_version": item.trained_version},
                             ensure_ascii=False))
            continue
        flag = " flagged" if item.flagged else ""
        print(f"#{item.id} [{item.adapter}] {item.status}{flag} · asked by {item.askers} · "
              f"{item.first_asked} – {item.last_asked}\n    {_line(item.question)}")
        if item.correction and item.status == "open":
            print(f"    suggested: {_line(item.correction)}")
        if item.status != "open":
            print(f"    {questions.describe_decision(item)}" + (f": {_line(item.answer)}" if item.answer else ""))
    if not found and not args.json:
        print(f"no {'' if args.status == 'all' else args.status + ' '}items" + (f" for {args.adapter}" if args.adapter else ""))
    return 0


def _line(text: str) -> str:
    """One line, control characters shown as spaces: what a farmer typed cannot move a terminal's cursor."""
    return "".join(c if c.isprintable() else " " for c in " ".join(str(text).split()))[:300]
