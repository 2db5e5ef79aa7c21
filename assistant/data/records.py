"""Rows -> records: each row's fields checked and cleaned (or rejected with a reason the user can
act on), exact duplicates folded, conflicting answers found, and the report's warnings."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from assistant.data.limits import MAX_CELL_CHARS
from assistant.data.readers import Item, JsonTooComplex, LongText, RowProblem, loads, to_text
from assistant.data.report import Conflict, DataReport, Record, Rejection, question_key

MIN_RECOMMENDED_PAIRS = 20
FIELD_ALIASES = {"question": ("question", "prompt", "instruction", "q"), "answer": ("answer", "response", "output", "a"),
                 "messages": ("messages",), "split": ("split",), "keywords": ("keywords", "keyword"),
                 "paraphrase_of": ("paraphrase_of", "paraphraseof")}
_MAX_KEYWORDS = 100  # a row's keywords are a handful; thousands are a pasted list, each normalised in turn
_TRAIN_SPLITS = {"train", "training"}
_TEST_SPLITS = {"test", "eval", "evaluation", "validation", "valid", "held-out", "heldout", "held_out", "holdout"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# "=" followed by anything but a space, or by a name or "(", is a formula; for + - @ we also need a call
# or DDE pipe after the name, so markdown bullets ("- item") and mentions ("@alice hi") are not
# rejected. A DDE call (cmd|' /C calc'!A0) anywhere in a cell is rejected too ("-2+cmd|...").
_FORMULA = re.compile(r"^(=\S|=\s*[A-Za-z(]|[+\-@]\s*[A-Za-z_][\w.]*\s*[(|!])|\w\s*\|\s*'[^']*'\s*!")


def build_records(items: list[Item], count_tokens: Callable[[str], int] | None,
                  max_tokens: int) -> tuple[list[Record], list[Rejection]]:
    records: list[Record] = []
    rejected: list[Rejection] = []
    for row, fields in items:
        try:
            if isinstance(fields, str):
                raise RowProblem(fields)
            paraphrase_of = normalise(_short_text(field(fields, "paraphrase_of"), "paraphrase_of")) or None
            split = _parse_split(field(fields, "split"), paraphrase_of is not None)
            keywords = _parse_keywords(field(fields, "keywords"))
            pairs = [(_clean_text(q, "question", count_tokens, max_tokens),
                      _clean_text(a, "answer", count_tokens, max_tokens)) for q, a in _raw_pairs(fields)]
        except RowProblem as exc:
            rejected.append(Rejection(row, str(exc)))
            continue
        records += [Record(q, a, row, split, list(keywords), paraphrase_of) for q, a in pairs]
    return records, rejected


def field(fields: dict[str, Any], name: str) -> Any:
    return next((fields[a] for a in FIELD_ALIASES[name] if a in fields), None)


def _raw_pairs(fields: dict[str, Any]) -> list[tuple[Any, Any]]:
    if any(a in fields for a in FIELD_ALIASES["question"] + FIELD_ALIASES["answer"]):
        return [(field(fields, "question"), field(fields, "answer"))]
    if "messages" in fields:
        return _pairs_from_messages(fields["messages"])
    raise RowProblem("no question/answer fields")


def _pairs_from_messages(messages: Any) -> list[tuple[Any, Any]]:
    if isinstance(messages, str):  # a messages column in a CSV holds JSON text
        try:
            messages = loads(_short_text(messages, "messages"))
        except JsonTooComplex as exc:
            raise RowProblem(f"messages cannot be read: {exc}") from None
        except json.JSONDecodeError:
            pass
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RowProblem("messages is not a list of {role, content} objects")
    pairs, pending = [], None
    for message in messages:
        role = str(message.get("role", "")).strip().lower()
        content = message.get("content")
        if isinstance(content, list):  # OpenAI-style content parts: keep the text ones
            content = "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        if role in ("user", "human"):
            pending = content if pending is None else f"{pending}\n{content}"
        elif role in ("assistant", "model", "gpt") and pending is not None:
            pairs.append((pending, content))
            pending = None
    if not pairs:
        raise RowProblem("messages has no user message followed by an assistant message")
    return pairs


def _clean_text(value: Any, what: str, count_tokens: Callable[[str], int] | None, max_tokens: int) -> str:
    if isinstance(value, LongText):  # an Excel cell too long to have been kept
        raise RowProblem(f"{what} is {_estimate_tokens(value.length, value.spaces)} tokens; the limit is {max_tokens}")
    text = to_text(value, what).replace("\r\n", "\n").replace("\r", "\n")
    if match := _CONTROL.search(text):
        raise RowProblem(f"{what} contains a control character (U+{ord(match.group()):04X})")
    if len(text) > MAX_CELL_CHARS:
        # Thousands of tokens over the limit whatever it holds; normalising or tokenising it would
        # cost memory in proportion to its size, so only its size is measured.
        if not text.strip():
            raise RowProblem(f"empty {what}")
        spaces = text.count(" ") + text.count("\n") + text.count("\t")
        raise RowProblem(f"{what} is {_estimate_tokens(len(text), spaces)} tokens; the limit is {max_tokens}")
    text = normalise(text)
    if not text:
        raise RowProblem(f"empty {what}")
    if _FORMULA.search(text):
        raise RowProblem(f"{what} looks like a spreadsheet formula")
    tokens = count_tokens(text) if count_tokens else _estimate_tokens(len(text), len(text.split()))
    if tokens > max_tokens:
        raise RowProblem(f"{what} is {tokens} tokens; the limit is {max_tokens}")
    return text


def _estimate_tokens(length: int, words: int) -> int:
    # Rough: ~1.5 tokens a word, and at least one per 4 characters (a 1 MB cell of one "word").
    return math.ceil(max(words * 1.5, length / 4))


def _short_text(value: Any, what: str) -> str:
    text = to_text(value, what)
    if len(text) > MAX_CELL_CHARS:
        raise RowProblem(f"{what} is longer than {MAX_CELL_CHARS:,} characters")
    return text


def _parse_split(value: Any, is_paraphrase: bool) -> str:
    name = _short_text(value, "split").strip().lower()
    if not name:
        return "test" if is_paraphrase else "train"
    if name in _TRAIN_SPLITS:
        return "train"
    if name in _TEST_SPLITS:
        return "test"
    raise RowProblem(f"unknown split {name[:40]!r} (use train or test)")


def _parse_keywords(value: Any) -> list[str]:
    parts = value if isinstance(value, list) else re.split(r"[;|]", _short_text(value, "keywords"))
    if len(parts) > _MAX_KEYWORDS:
        raise RowProblem(f"{len(parts)} keywords; the limit is {_MAX_KEYWORDS}")
    return [k for k in (normalise(_short_text(p, "keyword")) for p in parts) if k]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    # Keep each line's indentation (answers may hold code); collapse runs of spaces inside lines.
    lines = [re.match(r"[ \t]*", ln).group() + re.sub(r"[ \t\u00a0]+", " ", ln.lstrip(" \t")).rstrip()
             for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- whole-set checks

def fold_duplicates(records: list[Record]) -> tuple[list[Record], int]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for record in records:
        key = (record.question.casefold(), record.answer)
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept, len(records) - len(kept)


def find_conflicts(records: list[Record]) -> list[Conflict]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(question_key(record.question), []).append(record)
    conflicts = []
    for group in groups.values():
        answers = list(dict.fromkeys(r.answer for r in group))
        if len(answers) > 1:
            conflicts.append(Conflict(group[0].question, answers, [r.row for r in group]))
    return conflicts


def extra_cells_warning(rows: list[int]) -> list[str]:
    if not rows:
        return []
    shown = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
    return [f"{len(rows)} row(s) have more cells than the header has columns (rows {shown}): the extra cells "
            "were ignored; a cell that contains the separator (a comma, say) must be in quotes"]


def collect_warnings(report: DataReport) -> list[str]:
    warnings = []
    if report.rejected:
        warnings.append(f"{len(report.rejected)} row(s) were rejected and will not be used")
    pairs = report.unique_pairs()
    if pairs < MIN_RECOMMENDED_PAIRS:
        warnings.append(f"only {pairs} unique question-answer pairs; at least {MIN_RECOMMENDED_PAIRS} "
                        "are recommended")
    if not any(r.split == "test" or r.paraphrase_of for r in report.records):
        warnings.append("no held-out rows (split=test or paraphrase_of): evaluation can only check "
                        "recall of the training questions")
    missing = [(r.row, k) for r in report.records for k in r.keywords if k.casefold() not in r.answer.casefold()]
    warnings += [f"row {row}: keyword {k!r} does not appear in its answer" for row, k in missing[:10]]
    if len(missing) > 10:
        warnings.append(f"{len(missing) - 10} more keywords do not appear in their answers")
    return warnings
