"""Readers for CSV/TSV, JSON Lines and JSON, and the table shape they share with Excel.

Each reader returns the column names found and (row number, fields) items, where fields are keyed
by normalised column name, or are the reason the row cannot be read. Every reader stops at
MAX_ROWS data rows, and none builds more than its bounds allow (see limits.py): the CSV reader
refuses a row longer than MAX_ROW_CHARS before parsing it, and JSON is measured before it is
parsed, so a deeply nested or value-packed document is refused without a RecursionError.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable
from typing import Any

from assistant.data.limits import (
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    MAX_ROW_CHARS,
    MAX_ROWS,
)
from assistant.data.report import DataError

EXTRA_CELLS = "\x00extra cells"  # marks a table row longer than its header; no real column normalises to it
JSON_LIST_KEYS = ("data", "rows", "examples", "records")

Item = tuple[int, "dict[str, Any] | str"]  # (row number, fields by normalised key | rejection reason)

# A JSON string (possessive, so an unclosed quote cannot make the scan quadratic), and everything
# that is not a bracket: what is left of a document once both are removed is its nesting.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_SNIFF_CHARS = 4096


class LongText:
    """An Excel cell's text longer than MAX_CELL_CHARS: only its size is kept (the row checks reject it)."""

    def __init__(self, length: int, spaces: int):
        self.length, self.spaces = length, spaces


class RowProblem(ValueError):
    """One row is unusable; the message becomes its Rejection reason."""


def to_text(value: Any, what: str) -> str:
    """A cell as text (Excel's numbers, booleans and dates as a spreadsheet shows them); RowProblem if it is none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, LongText):
        raise RowProblem(f"{what} is longer than {MAX_CELL_CHARS:,} characters")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 7 as 7.0
    if isinstance(value, int | float):
        return str(value).lower()  # bools read as true/false
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise RowProblem(f"{what} is not text")


def too_many_rows() -> DataError:
    return DataError(f"the file has more than {MAX_ROWS:,} data rows, the limit (far more Q&A than one adapter "
                     f"trains on, and it keeps checking a file to seconds); split it into files of at most "
                     f"{MAX_ROWS:,} rows")


# --- tables (CSV and Excel)

def table_items(rows: Iterable[tuple[int, list[Any]]]) -> tuple[list[str], list[Item]]:
    """(columns, items) from (row index, cells) pairs: the first non-blank row is the header, and
    row N is the Nth row under it (blank rows count, as a spreadsheet numbers them)."""
    rows = iter(rows)
    header = next(((index, r) for index, r in rows if not is_blank(r)), None)
    if header is None:
        raise DataError("the file has no header row and no data")
    header_index, cells = header
    while cells and is_blank(cells[-1:]):
        cells = cells[:-1]  # trailing empty header cells are not columns
    if len(cells) > MAX_COLUMNS:
        raise DataError(f"the header row has more than {MAX_COLUMNS} columns; a Q&A file has a few (question, "
                        "answer, and perhaps split, keywords, paraphrase_of)")
    try:
        columns = [to_text(c, "column name").strip() for c in cells]
    except ValueError as exc:
        raise DataError(f"the header row cannot be read: {exc}") from None
    items: list[Item] = []
    for index, row in rows:
        if is_blank(row):
            continue
        if len(items) >= MAX_ROWS:
            raise too_many_rows()
        fields = normalise_keys(dict(zip(columns, row, strict=False)))
        if not is_blank(row[len(columns):]):
            fields[EXTRA_CELLS] = True  # reported: usually an unquoted comma cut an answer short
        items.append((index - header_index, fields))
    return columns, items


def read_csv(text: str, source_name: str) -> tuple[list[str], list[Item]]:
    delimiter = "\t" if source_name.lower().endswith(".tsv") else _sniff_delimiter(text)
    # A cell may be as long as a row may (the row checks reject it, not the whole file); the csv
    # module's own 128 KB limit would fail the file over one long cell.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_CHARS + 1))
    lines = _BoundedLines(text)
    reader = csv.reader(lines, delimiter=delimiter)

    def rows():
        for index, row in enumerate(reader, 1):
            lines.row_chars = 0
            yield index, row

    try:
        result = table_items(rows())
    except csv.Error as exc:
        raise DataError(f"could not read the CSV file: {exc}") from None
    except _RowTooLong:
        limit = f"{MAX_ROW_CHARS // 2**20} MB"
        if lines.row_quotes % 2:  # the usual cause: a quote opened and never closed
            raise DataError(f"the quote that opens a cell in the row starting on line {lines.row_start} is not closed "
                            f"within {limit}, so rows would run together; fix the quotes (a quote inside a quoted "
                            'cell is written "") and upload again') from None
        raise DataError(f"the row starting on line {lines.row_start} is longer than {limit}; a question-answer "
                        "row is a few KB: check for a pasted document") from None
    _check_quotes(text, delimiter)
    return result


class _RowTooLong(Exception):
    pass


class _BoundedLines:
    """The text's lines for csv.reader, refusing a row (its lines together) past MAX_ROW_CHARS
    before the reader splits it into cells."""

    def __init__(self, text: str):
        self._lines = iter(io.StringIO(text, newline=""))
        self.line = 0
        self.row_chars = 0
        self.row_quotes = 0
        self.row_start = 1

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.line += 1
        if self.row_chars == 0:
            self.row_start, self.row_quotes = self.line, 0
        self.row_chars += len(line)
        self.row_quotes += line.count('"')
        if self.row_chars > MAX_ROW_CHARS:
            raise _RowTooLong
        return line


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
    """The header decides (the sniffer prefers "," even when commas only occur inside answers);
    the sniffer is asked only when the header holds more than one candidate, and only about the
    first 4 KB: its regular expressions take minutes on 64 KB of quotes and brackets."""
    header = text[:65536].split("\n", 1)[0]
    counts = {d: header.count(d) for d in ",;\t"}
    if sum(1 for n in counts.values() if n) < 2:
        return max(counts, key=counts.get) if any(counts.values()) else ","
    try:
        delimiter = csv.Sniffer().sniff(text[:_SNIFF_CHARS], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    return delimiter if delimiter in header else max(counts, key=counts.get)


# --- JSON and JSON Lines

class JsonTooComplex(ValueError):
    """The text is bigger or deeper than any Q&A JSON: refused before parsing."""


def json_shape_problem(text: str) -> str | None:
    """Why this JSON text is refused before parsing (too many values, too deep), or None."""
    skeleton = _JSON_STRING.sub("", text)
    opens = skeleton.count("[") + skeleton.count("{")
    brackets = opens + skeleton.count("]") + skeleton.count("}")
    if opens + skeleton.count(",") > MAX_JSON_VALUES or brackets > 2 * MAX_JSON_VALUES:
        return f"it holds more than {MAX_JSON_VALUES:,} values"
    depth = 0
    for bracket in _NOT_BRACKET.sub("", skeleton):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return f"it is nested more than {MAX_JSON_DEPTH} levels deep (a Q&A file nests at most 6)"
    return None


def loads(text: str) -> Any:
    """json.loads within the bounds; raises JsonTooComplex (a ValueError) past them."""
    problem = json_shape_problem(text)
    if problem:
        raise JsonTooComplex(problem)
    return json.loads(text)


def read_json_text(text: str, file_format: str) -> tuple[str, list[str], list[Item]]:
    """Parse JSON or JSON Lines, falling back to the other when the declared one does not parse."""
    lines = _parse_json_lines(text) if file_format == "jsonl" else []
    if not any(isinstance(fields, dict) for _, fields in lines):
        try:
            return "json", *_json_document_items(loads(text))
        except JsonTooComplex as exc:
            if file_format == "jsonl" and lines:
                raise DataError(f"not valid JSON Lines: no line is a JSON object, and as one document {exc}") from None
            raise DataError(f"the JSON cannot be read: {exc}; a Q&A file is a list of question-answer "
                            "objects, or one object per line") from None
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
        if len(items) >= MAX_ROWS:
            raise too_many_rows()
        try:
            value = loads(line)
        except JsonTooComplex as exc:
            items.append((number, f"the line cannot be read: {exc}"))
            continue
        except json.JSONDecodeError as exc:
            items.append((number, f"not valid JSON ({exc.msg})"))
            continue
        items.append((number, normalise_keys(value) if isinstance(value, dict) else "not a JSON object"))
    return items


def _json_document_items(document: Any) -> tuple[list[str], list[Item]]:
    if isinstance(document, dict):
        by_key = normalise_keys(document)
        listed = next((by_key[k] for k in JSON_LIST_KEYS if isinstance(by_key.get(k), list)), None)
        # A lone object with question/answer fields is a one-row file, not an error.
        document = listed if listed is not None else [document]
    if not isinstance(document, list):
        raise DataError("expected a JSON list of objects, or an object with a list under "
                        f"{', '.join(JSON_LIST_KEYS)}; found {type(document).__name__}")
    if len(document) > MAX_ROWS:
        raise too_many_rows()
    items: list[Item] = [(n, normalise_keys(v) if isinstance(v, dict) else "not a JSON object")
                         for n, v in enumerate(document, 1)]
    columns = list(dict.fromkeys(k for v in document if isinstance(v, dict) for k in v))
    return columns, items


# --- shared

def normalise_key(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def normalise_keys(fields: dict[str, Any]) -> dict[str, Any]:
    return {normalise_key(key): value for key, value in fields.items()}


def is_blank(row: list[Any] | tuple[Any, ...]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in row)
