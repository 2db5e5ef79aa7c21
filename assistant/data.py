"""Loading and checking uploaded question-answer files for LoRA fine-tuning.

Reads CSV/TSV, Excel (.xlsx), JSON Lines and JSON into ``Record`` rows. Bad rows are rejected with
a reason the user can act on, exact duplicates are folded, questions with conflicting answers are
reported, and whole-file problems raise ``DataError`` with a message meant to be shown as is.
The resulting ``DataReport`` is what the CLI prints and what training checks before it starts.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import math
import re
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 20 * 1024 * 1024
SUPPORTED_FORMATS = "CSV (.csv, .tsv, .txt), Excel (.xlsx), JSON Lines (.jsonl) or JSON (.json)"
MIN_RECOMMENDED_PAIRS = 20

_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".json": "json"}
# Documents people commonly upload by mistake: naming the problem beats a confusing parse error.
_UNSUPPORTED_EXTENSIONS = {".docx", ".doc", ".xls", ".xlsm", ".ods", ".odt", ".pdf", ".rtf", ".pptx",
                           ".ppt", ".png", ".jpg", ".jpeg", ".gif", ".zip", ".gz", ".pages", ".numbers"}
_MAGIC = [(b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip archive"),
          (b"\xd0\xcf\x11\xe0", "an old-style Office file (.xls/.doc); save it as .xlsx or CSV")]
_FIELD_ALIASES = {"question": ("question", "prompt", "instruction", "q"), "answer": ("answer", "response", "output", "a"),
                  "messages": ("messages",), "split": ("split",), "keywords": ("keywords", "keyword"),
                  "paraphrase_of": ("paraphrase_of", "paraphraseof")}
_JSON_LIST_KEYS = ("data", "rows", "examples", "records")
_TRAIN_SPLITS = {"train", "training"}
_TEST_SPLITS = {"test", "eval", "evaluation", "validation", "valid", "held-out", "heldout", "held_out", "holdout"}
# A well-formed UTF-8 sequence for a non-ASCII character; Windows-1252 text almost never contains one.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# "=" followed by anything but a space, or by a name or "(", is a formula; for + - @ we also need a call
# or DDE pipe after the name, so markdown bullets ("- item") and mentions ("@alice hi") are not
# rejected. A DDE call (cmd|' /C calc'!A0) anywhere in a cell is rejected too ("-2+cmd|...").
_FORMULA = re.compile(r"^(=\S|=\s*[A-Za-z(]|[+\-@]\s*[A-Za-z_][\w.]*\s*[(|!])|\w\s*\|\s*'[^']*'\s*!")

codecs.register_error("assistant-latin-1", lambda e: (e.object[e.start:e.end].decode("latin-1"), e.end))

_EXTRA_CELLS = "\x00extra cells"  # marks a table row longer than its header; no real column normalises to it

Item = tuple[int, "dict[str, Any] | str"]  # (row number, fields by normalised key | rejection reason)


class DataError(Exception):
    """A whole-file problem: the message is shown to the user as is (no traceback)."""


class _RowProblem(ValueError):
    """One row is unusable; the message becomes its Rejection reason."""


@dataclass
class Record:
    question: str
    answer: str
    row: int
    split: str = "train"
    keywords: list[str] = field(default_factory=list)
    paraphrase_of: str | None = None


@dataclass
class Rejection:
    row: int
    reason: str


@dataclass
class Conflict:
    question: str
    answers: list[str]
    rows: list[int]


@dataclass
class DataReport:
    source: str
    sha256: str
    file_format: str
    rows_read: int
    records: list[Record]
    rejected: list[Rejection]
    duplicates_folded: int
    conflicts: list[Conflict]
    warnings: list[str]
    lint: list = field(default_factory=list)  # assistant.knowledge.LintFinding: similar questions

    @property
    def train(self) -> list[Record]:
        return [r for r in self.records if r.split == "train"]

    @property
    def test(self) -> list[Record]:
        return [r for r in self.records if r.split == "test"]

    def unique_pairs(self) -> int:
        return len({(_question_key(r.question), r.answer) for r in self.records})

    def blocking_problems(self, allow_conflicts: bool = False) -> list[str]:
        problems = []
        if not self.train:
            problems.append("there are no training rows: every accepted row is held out (split=test)")
        if self.conflicts and not allow_conflicts:
            problems.append(f"{len(self.conflicts)} question(s) have conflicting answers; fix them "
                            "or allow conflicts to train anyway")
        return problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(train_count=len(self.train), test_count=len(self.test), unique_pairs=self.unique_pairs())
        return data

    def summary(self) -> str:
        lines = [f"{self.source} ({self.file_format}, sha256 {self.sha256[:12]})",
                 f"rows read: {self.rows_read}; accepted: {len(self.records)} (train {len(self.train)}, "
                 f"test {len(self.test)}); rejected: {len(self.rejected)}; "
                 f"duplicates folded: {self.duplicates_folded}; unique pairs: {self.unique_pairs()}"]
        if self.rejected:
            lines.append("Rejected rows:")
            lines += [f"  row {r.row}: {r.reason}" for r in self.rejected[:50]]
            if len(self.rejected) > 50:  # a 100,000-row file must not print 100,000 lines
                lines.append(f"  …and {len(self.rejected) - 50} more (--json lists every one)")
        if self.conflicts:
            lines.append("Conflicting answers:")
            for c in self.conflicts:
                answers = " | ".join(textwrap.shorten(a, 60, placeholder="…") for a in c.answers)
                lines.append(f"  {textwrap.shorten(c.question, 60, placeholder='…')!r} (rows {', '.join(map(str, c.rows))}): {answers}")
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.lint:
            lines.append("Similar questions (lint):")
            lines += [f"  - {f.message}" for f in self.lint]
        return "\n".join(lines)


def load_qa_file(path: str | Path, *, source_name: str | None = None, max_bytes: int = MAX_FILE_BYTES,
                 count_tokens: Callable[[str], int] | None = None, max_tokens: int = 256) -> DataReport:
    """Read a question-answer file from disk and check it; see ``read_qa_bytes``."""
    path = Path(path)
    name = source_name or path.name
    try:
        # Check the size before reading so an oversized upload is never loaded into memory.
        _check_size(path.stat().st_size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"could not read {name}: {exc.strerror or exc}") from None
    return read_qa_bytes(data, name, max_bytes=max_bytes, count_tokens=count_tokens, max_tokens=max_tokens)


def read_qa_bytes(data: bytes, source_name: str, *, max_bytes: int = MAX_FILE_BYTES,
                  count_tokens: Callable[[str], int] | None = None, max_tokens: int = 256) -> DataReport:
    """Parse and check an uploaded file's bytes; raises DataError for whole-file problems."""
    _check_size(len(data), max_bytes)
    file_format = _detect_format(data, source_name)
    encoding_note = None
    if file_format == "xlsx":
        columns, items = _read_xlsx(data)
    else:
        text, encoding_note = _decode_text(data)
        if file_format == "csv":
            columns, items = _read_csv(text, source_name)
        else:
            file_format, columns, items = _read_json_text(text, file_format)
    if columns or items:  # an empty JSON list has no columns to complain about, only no rows
        _check_columns(columns)
    records, rejected = _build_records(items, count_tokens, max_tokens)
    if not records:
        raise DataError(_unusable_message(len(items), rejected))
    kept, folded = _fold_duplicates(records)
    report = DataReport(source_name, hashlib.sha256(data).hexdigest(), file_format, len(items), kept,
                        rejected, folded, _find_conflicts(kept), [])
    extra = [row for row, fields in items if isinstance(fields, dict) and fields.get(_EXTRA_CELLS)]
    report.warnings = [encoding_note] * bool(encoding_note) + _extra_cells_warning(extra) + _collect_warnings(report)
    return report


# --- whole-file checks

def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise DataError("the file is empty")
    if size > max_bytes:
        raise DataError(f"the file is too large: {_format_size(size)}; the limit is {_format_size(max_bytes)}")


def _format_size(size: int) -> str:
    # Real limits are megabytes; tiny ones (tests, tight configs) would all print as "0.0 MB".
    return f"{size / 2**20:.1f} MB" if size >= 2**20 / 10 else f"{size:,} bytes"


def _detect_format(data: bytes, source_name: str) -> str:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise DataError(f"this looks like {kind}, not a question-answer file. "
                            f"Supported formats: {SUPPORTED_FORMATS}")
    extension = Path(source_name).suffix.lower()
    if extension in _UNSUPPORTED_EXTENSIONS:
        raise DataError(f"{extension} files are not supported. Supported formats: {SUPPORTED_FORMATS}")
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    # No usable extension: sniff. "{" may be one JSON object or JSON Lines; the JSON reader handles both.
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    return "xlsx" if data.startswith(b"PK\x03\x04") else "json" if head[:1] in (b"[", b"{") else "csv"


def _decode_text(data: bytes) -> tuple[str, str | None]:
    """(text, a warning when the encoding had to be guessed). Excel's two other text exports are
    read too: "Unicode Text" (UTF-16 with a byte-order mark) and "CSV" on Windows (Windows-1252)."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), None
            except UnicodeDecodeError as exc:
                raise DataError(f"the file starts with a {codec[:6].upper()} byte-order mark but is not valid "
                                f"{codec[:6].upper()} text (at byte offset {len(bom) + exc.start}); save it as "
                                "UTF-8 (in Excel: 'CSV UTF-8') and upload it again") from None
    if b"\x00" in data[:8192]:
        # Also what BOM-less UTF-16 looks like, so the message covers both.
        raise DataError("the file contains binary data (NUL bytes): it is not UTF-8 text. Save it as "
                        f"UTF-8 text; supported formats: {SUPPORTED_FORMATS}")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
    # A UTF-8 mark, or real UTF-8 characters elsewhere, mean two encodings in one file: guessing would
    # garble one of them, so say where the first foreign byte is instead.
    if bom or _UTF8_MULTIBYTE.search(data):
        line = data.count(b"\n", 0, offset) + 1
        raise DataError(f"the file mixes encodings: it is marked as or partly written in UTF-8, but byte "
                        f"0x{data[offset]:02X} on line {line} (byte offset {offset}) is not valid UTF-8; save it "
                        "as UTF-8 (in Excel: 'CSV UTF-8') and upload it again")
    # Five bytes have no Windows-1252 letter; as Latin-1 they become control characters, rejected per row.
    text = data.decode("cp1252", errors="assistant-latin-1")
    return text, ("the file is not UTF-8; it was read as Windows-1252 (Western European, what Excel saves as "
                  "'CSV' on Windows): check that accented letters look right, or save it as 'CSV UTF-8'")


def _check_columns(columns: list[str]) -> None:
    keys = {_normalise_key(c) for c in columns}
    has = {name: any(a in keys for a in aliases) for name, aliases in _FIELD_ALIASES.items()}
    if (has["question"] and has["answer"]) or has["messages"]:
        return
    found = ", ".join(repr(c) for c in columns if str(c).strip()) or "none"
    raise DataError(f"no question/answer columns found (columns found: {found}). Use question/answer, "
                    "prompt/response, instruction/output or q/a, or a chat 'messages' list")


def _unusable_message(row_count: int, rejected: list[Rejection]) -> str:
    if not row_count:
        return "the file has no data rows"
    # Reasons carry numbers ("question is 812 tokens"); mask them so alike reasons count together.
    masked = Counter(re.sub(r"\d+", "#", r.reason) for r in rejected)
    top, count = masked.most_common(1)[0]
    example = next(r.reason for r in rejected if re.sub(r"\d+", "#", r.reason) == top)
    return (f"no usable rows: all {row_count} rows were rejected; the most common reason is "
            f"'{example}' ({count} rows)")


# --- readers: each returns the column names found and (row number, fields) items

def _read_csv(text: str, source_name: str) -> tuple[list[str], list[Item]]:
    delimiter = "\t" if source_name.lower().endswith(".tsv") else _sniff_delimiter(text)
    # The file's size is already capped; the csv module's own 128 KB cell limit would fail the whole
    # file over one huge cell, which the length check rejects as a row instead.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES, len(text)))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise DataError(f"could not read the CSV file: {exc}") from None
    _check_quotes(text, delimiter)
    return _table_items(rows)


def _check_quotes(text: str, delimiter: str) -> None:
    """A missing quote makes the lenient reader merge rows silently (the rest of the file into one
    cell, or a row glued to the next); a strict second read finds where, so we say so instead."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as exc:
        if "end of data" in str(exc):
            where = f"the quote that opens a cell in the row starting on line {start} is never closed"
        elif "expected after" in str(exc):
            where = (f"in the row starting on line {start}, a cell's closing quote is followed by more text "
                     f"(on line {reader.line_num}) instead of {delimiter!r}: a quote is missing or stray")
        else:
            return  # nothing about quotes: the lenient read stands
        raise DataError(f"{where}, so rows would run together; fix the quotes (a quote inside a quoted cell "
                        'is written "") and upload again') from None


def _sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    if delimiter not in header:
        # The sniffer prefers "," even when commas only occur inside answers; trust the header.
        counts = {d: header.count(d) for d in ",;\t"}
        delimiter = max(counts, key=counts.get) if any(counts.values()) else ","
    return delimiter


def _read_xlsx(data: bytes) -> tuple[list[str], list[Item]]:
    import openpyxl  # deferred: only Excel uploads pay for the import

    try:
        # Not data_only: formula cells must come back as "=..." text so they can be rejected.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        try:
            rows = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()
    except Exception:  # openpyxl raises many types for damaged files; all mean the same to the user
        raise DataError("not a readable Excel file: open it in Excel and save it again as .xlsx, "
                        "or export it as CSV UTF-8") from None
    return _table_items(rows)


def _table_items(rows: list[list[Any]]) -> tuple[list[str], list[Item]]:
    rows_left = iter(rows)
    header = next((r for r in rows_left if not _is_blank(r)), None)
    if header is None:
        raise DataError("the file has no header row and no data")
    columns = [_to_text(c, "column name").strip() for c in header]
    items: list[Item] = []
    # Numbering counts blank rows too, so row N is always the Nth row under the header.
    for number, row in enumerate(rows_left, 1):
        if not _is_blank(row):
            fields = _normalise_keys(dict(zip(columns, row, strict=False)))
            if not _is_blank(row[len(columns):]):
                fields[_EXTRA_CELLS] = True  # reported: usually an unquoted comma cut an answer short
            items.append((number, fields))
    return columns, items


def _read_json_text(text: str, file_format: str) -> tuple[str, list[str], list[Item]]:
    """Parse JSON or JSON Lines, falling back to the other when the declared one does not parse."""
    lines = _parse_json_lines(text) if file_format == "jsonl" else []
    if not any(isinstance(fields, dict) for _, fields in lines):
        try:
            return "json", *_json_document_items(json.loads(text))
        except json.JSONDecodeError as exc:
            lines = _parse_json_lines(text)
            if not any(isinstance(fields, dict) for _, fields in lines):
                kind = "JSON Lines" if file_format == "jsonl" else "JSON"
                raise DataError(f"not valid {kind}: {exc.msg} at line {exc.lineno}, column {exc.colno}; "
                                "expected one JSON object per line or a list of objects") from None
    columns = list(dict.fromkeys(k for _, fields in lines if isinstance(fields, dict) for k in fields))
    return "jsonl", columns, lines


def _parse_json_lines(text: str) -> list[Item]:
    items: list[Item] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append((number, f"not valid JSON ({exc.msg})"))
            continue
        items.append((number, _normalise_keys(value) if isinstance(value, dict) else "not a JSON object"))
    return items


def _json_document_items(document: Any) -> tuple[list[str], list[Item]]:
    if isinstance(document, dict):
        by_key = _normalise_keys(document)
        listed = next((by_key[k] for k in _JSON_LIST_KEYS if isinstance(by_key.get(k), list)), None)
        # A lone object with question/answer fields is a one-row file, not an error.
        document = listed if listed is not None else [document]
    if not isinstance(document, list):
        raise DataError("expected a JSON list of objects, or an object with a list under "
                        f"{', '.join(_JSON_LIST_KEYS)}; found {type(document).__name__}")
    items: list[Item] = [(n, _normalise_keys(v) if isinstance(v, dict) else "not a JSON object")
                         for n, v in enumerate(document, 1)]
    columns = list(dict.fromkeys(k for v in document if isinstance(v, dict) for k in v))
    return columns, items


# --- rows

def _build_records(items: list[Item], count_tokens: Callable[[str], int] | None,
                   max_tokens: int) -> tuple[list[Record], list[Rejection]]:
    records: list[Record] = []
    rejected: list[Rejection] = []
    for row, fields in items:
        try:
            if isinstance(fields, str):
                raise _RowProblem(fields)
            paraphrase_of = _normalise(_to_text(_field(fields, "paraphrase_of"), "paraphrase_of")) or None
            split = _parse_split(_field(fields, "split"), paraphrase_of is not None)
            keywords = _parse_keywords(_field(fields, "keywords"))
            pairs = [(_clean_text(q, "question", count_tokens, max_tokens),
                      _clean_text(a, "answer", count_tokens, max_tokens)) for q, a in _raw_pairs(fields)]
        except _RowProblem as exc:
            rejected.append(Rejection(row, str(exc)))
            continue
        records += [Record(q, a, row, split, list(keywords), paraphrase_of) for q, a in pairs]
    return records, rejected


def _field(fields: dict[str, Any], name: str) -> Any:
    return next((fields[a] for a in _FIELD_ALIASES[name] if a in fields), None)


def _raw_pairs(fields: dict[str, Any]) -> list[tuple[Any, Any]]:
    if any(a in fields for a in _FIELD_ALIASES["question"] + _FIELD_ALIASES["answer"]):
        return [(_field(fields, "question"), _field(fields, "answer"))]
    if "messages" in fields:
        return _pairs_from_messages(fields["messages"])
    raise _RowProblem("no question/answer fields")


def _pairs_from_messages(messages: Any) -> list[tuple[Any, Any]]:
    if isinstance(messages, str):  # a messages column in a CSV holds JSON text
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            pass
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _RowProblem("messages is not a list of {role, content} objects")
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
        raise _RowProblem("messages has no user message followed by an assistant message")
    return pairs


def _clean_text(value: Any, what: str, count_tokens: Callable[[str], int] | None, max_tokens: int) -> str:
    text = _to_text(value, what).replace("\r\n", "\n").replace("\r", "\n")
    if match := _CONTROL.search(text):
        raise _RowProblem(f"{what} contains a control character (U+{ord(match.group()):04X})")
    text = _normalise(text)
    if not text:
        raise _RowProblem(f"empty {what}")
    if _FORMULA.search(text):
        raise _RowProblem(f"{what} looks like a spreadsheet formula")
    # Rough estimate: ~1.5 tokens a word, and at least one per 4 characters (a 1 MB cell of one "word").
    tokens = count_tokens(text) if count_tokens else math.ceil(max(len(text.split()) * 1.5, len(text) / 4))
    if tokens > max_tokens:
        raise _RowProblem(f"{what} is {tokens} tokens; the limit is {max_tokens}")
    return text


def _parse_split(value: Any, is_paraphrase: bool) -> str:
    name = _to_text(value, "split").strip().lower()
    if not name:
        return "test" if is_paraphrase else "train"
    if name in _TRAIN_SPLITS:
        return "train"
    if name in _TEST_SPLITS:
        return "test"
    raise _RowProblem(f"unknown split {name!r} (use train or test)")


def _parse_keywords(value: Any) -> list[str]:
    parts = value if isinstance(value, list) else re.split(r"[;|]", _to_text(value, "keywords"))
    return [k for k in (_normalise(_to_text(p, "keyword")) for p in parts) if k]


def _to_text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 7 as 7.0
    if isinstance(value, int | float):
        return str(value).lower()  # bools read as true/false
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise _RowProblem(f"{what} is not text")


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    # Keep each line's indentation (answers may hold code); collapse runs of spaces inside lines.
    lines = [re.match(r"[ \t]*", ln).group() + re.sub(r"[ \t\u00a0]+", " ", ln.lstrip(" \t")).rstrip()
             for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _normalise_key(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _normalise_keys(fields: dict[str, Any]) -> dict[str, Any]:
    return {_normalise_key(key): value for key, value in fields.items()}


def _is_blank(row: list[Any] | tuple[Any, ...]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in row)


# --- whole-set checks

def _question_key(question: str) -> str:
    return question.casefold().rstrip("?.!？。 ").strip()


def _fold_duplicates(records: list[Record]) -> tuple[list[Record], int]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for record in records:
        key = (record.question.casefold(), record.answer)
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept, len(records) - len(kept)


def _find_conflicts(records: list[Record]) -> list[Conflict]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(_question_key(record.question), []).append(record)
    conflicts = []
    for group in groups.values():
        answers = list(dict.fromkeys(r.answer for r in group))
        if len(answers) > 1:
            conflicts.append(Conflict(group[0].question, answers, [r.row for r in group]))
    return conflicts


def _extra_cells_warning(rows: list[int]) -> list[str]:
    if not rows:
        return []
    shown = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
    return [f"{len(rows)} row(s) have more cells than the header has columns (rows {shown}): the extra cells "
            "were ignored; a cell that contains the separator (a comma, say) must be in quotes"]


def _collect_warnings(report: DataReport) -> list[str]:
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
