"""The cells of an .xlsx worksheet, as openpyxl would read them, within bounds.

The shared string table, the number formats that make a number a date, and the sheet's rows
streamed chunk by chunk (assistant.data.xml_stream): at most MAX_COLUMNS cells kept a row, a
formula always "=..." text, memory flat whatever the sheet declares.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from typing import Any

from assistant.data.limits import MAX_COLUMNS, MAX_SHARED_STRINGS
from assistant.data.readers import LongText
from assistant.data.report import DataError
from assistant.data.xml_stream import Budget, Text, parse_member, run

_MAX_STYLES = 65_536  # Excel's own limit on cell formats; further ones are read as "General"
_MAX_ROW_CELLS = 16_384  # Excel's own limit on columns: a row with more cells was not made by a spreadsheet
_CELL_REF = re.compile(r"([A-Za-z]{1,3})(\d*)$")


def shared_strings(archive: zipfile.ZipFile, name: str, budget: Budget) -> list[str | LongText]:
    """The shared string table, as openpyxl reads it: each item's plain and run texts, not phonetic ones."""
    strings: list[str | LongText] = []
    if name not in archive.NameToInfo:
        return strings
    state = {"text": None, "phonetic": 0, "in_t": False}

    def start(tag: str, attrs: dict) -> None:
        if tag == "si":
            if len(strings) >= MAX_SHARED_STRINGS:
                raise DataError(f"the Excel file holds more than {MAX_SHARED_STRINGS:,} distinct cell texts; save only "
                                "the Q&A columns, or export it as CSV UTF-8")
            state["text"] = Text()
        elif tag == "rPh":
            state["phonetic"] += 1
        elif tag == "t":
            state["in_t"] = state["text"] is not None and not state["phonetic"]

    def end(tag: str) -> None:
        if tag == "si" and state["text"] is not None:
            value = state["text"].value()
            strings.append(value.replace("x005F_", "") if isinstance(value, str) else value)
            state["text"] = None
        elif tag == "rPh":
            state["phonetic"] -= 1
        elif tag == "t":
            state["in_t"] = False

    def text(data: str) -> None:
        if state["in_t"]:
            state["text"].add(data)

    run(parse_member(archive, name, budget, start, end, text))
    return strings


def date_styles(archive: zipfile.ZipFile, name: str, budget: Budget) -> list[str]:
    """Per cell format (the `s` of a cell): "date", "timedelta" or "" (openpyxl's own rule)."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

    custom: dict[int, str] = {}
    format_ids: list[int] = []
    where = {"cellXfs": False}
    if name not in archive.NameToInfo:
        return []

    def start(tag: str, attrs: dict) -> None:
        if tag == "numFmt" and len(custom) < _MAX_STYLES:
            custom[int(attrs.get("numFmtId", -1))] = attrs.get("formatCode", "")
        elif tag == "cellXfs":
            where["cellXfs"] = True
        elif tag == "xf" and where["cellXfs"] and len(format_ids) < _MAX_STYLES:
            format_ids.append(int(attrs.get("numFmtId", 0)))

    def end(tag: str) -> None:
        if tag == "cellXfs":
            where["cellXfs"] = False

    run(parse_member(archive, name, budget, start, end))
    kinds = []
    for fmt_id in format_ids:
        code = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
        kinds.append("timedelta" if is_timedelta_format(code) else "date" if is_date_format(code) else "")
    return kinds


def _column(ref: str | None, previous: int) -> int:
    match = _CELL_REF.match(ref or "")
    if not match:
        return previous + 1
    number = 0
    for letter in match.group(1).upper():
        number = number * 26 + ord(letter) - 64
    return number


class _SheetState:
    def __init__(self):
        self.row_number = 0
        self.cells: list[Any] | None = None
        self.column = 0
        self.row_cells = 0
        self.kind = "n"
        self.style = 0
        self.value: Text | None = None  # the <v> text, or the inline string's
        self.formula: Text | None = None
        self.phonetic = 0
        self.collecting: Text | None = None
        self.done: list[tuple[int, list[Any]]] = []


def sheet_rows(archive, name, strings, styles, date1904, budget) -> Iterator[tuple[int, list[Any]]]:
    s = _SheetState()

    def start(tag: str, attrs: dict) -> None:
        if tag == "row":
            r = attrs.get("r", "")
            number = int(r) if r.isdigit() else 0
            s.row_number = number if number > s.row_number else s.row_number + 1
            s.cells, s.column, s.row_cells = [], 0, 0
        elif tag == "c" and s.cells is not None:
            s.column = _column(attrs.get("r"), s.column)
            s.row_cells += 1
            if s.row_cells > _MAX_ROW_CELLS:
                raise DataError(f"row {s.row_number} of the sheet has more than {_MAX_ROW_CELLS:,} cells, more than "
                                "Excel allows: it was not saved by a spreadsheet; export it as CSV UTF-8")
            s.kind, s.value, s.formula = attrs.get("t", "n"), None, None
            try:
                s.style = int(attrs.get("s", 0))
            except ValueError:
                s.style = 0
        elif tag == "v" and s.cells is not None and s.kind != "inlineStr":
            s.value = s.collecting = Text()
        elif tag == "f" and s.cells is not None:
            s.formula = s.collecting = Text()
        elif tag == "is" and s.cells is not None:
            s.value = Text()
        elif tag == "rPh":
            s.phonetic += 1
        elif tag == "t" and s.kind == "inlineStr" and s.value is not None and not s.phonetic:
            s.collecting = s.value

    def end(tag: str) -> None:
        if tag in ("v", "f", "t"):
            s.collecting = None
        elif tag == "rPh":
            s.phonetic -= 1
        elif tag == "c" and s.cells is not None:
            _place(s, _cell_value(s, strings, styles, date1904))
        elif tag == "row" and s.cells is not None:
            if s.cells:  # a row with no non-blank cell is blank: numbering goes by row number, not by count
                s.done.append((s.row_number, s.cells))
            s.cells = None

    def text(data: str) -> None:
        if s.collecting is not None:
            s.collecting.add(data)

    def rows_so_far() -> Iterator[tuple[int, list[Any]]]:
        done, s.done = s.done, []
        yield from done

    yield from parse_member(archive, name, budget, start, end, text, rows_so_far)


def _place(s: _SheetState, value: Any) -> None:
    """Keep the first MAX_COLUMNS cells; past them, only whether any is non-blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return
    index = min(s.column, MAX_COLUMNS + 1) - 1
    if index >= len(s.cells):
        s.cells.extend([None] * (index + 1 - len(s.cells)))
    s.cells[index] = "(more cells)" if index == MAX_COLUMNS else value


def _cell_value(s: _SheetState, strings, styles, date1904) -> Any:
    if s.formula is not None:
        # Formulas are never run or trusted: "=..." text, rejected by the row checks (even a shared
        # formula's dependent cell, whose own text is empty).
        formula = s.formula.value()
        return "=" + ((formula.strip() if isinstance(formula, str) else "") or "?")
    value = s.value.value() if s.value is not None else None
    if s.kind == "inlineStr" or value is None or isinstance(value, LongText):
        return value
    if value == "":
        return None
    if s.kind == "s":
        return strings[int(value)]
    if s.kind == "b":
        return bool(int(value))
    if s.kind in ("str", "e"):
        return value
    if s.kind == "d":
        from openpyxl.utils.datetime import from_ISO8601

        return from_ISO8601(value)
    number = float(value) if "." in value or "e" in value.lower() else int(value)
    kind = styles[s.style] if 0 <= s.style < len(styles) else ""
    if kind:
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

        try:
            return from_excel(number, CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900,
                              timedelta=kind == "timedelta")
        except (OverflowError, ValueError):
            return "#VALUE!"
    return number
