"""The first worksheet of an .xlsx file, read within bounds.

openpyxl (even read-only) trusts what the file declares: a 1.7 KB sheet declaring
`<dimension ref="A1:XFD1048576"/>` made it build 16,384 cells a row (5 GB in 25 s), it builds a
whole `<row>` element however many cells it holds, and it unpacks any zip bomb. So this reader
checks the zip's declared sizes first, then streams the XML through expat (no DTDs, so no entity
expansion; bounded depth and element count) and keeps at most MAX_COLUMNS cells a row, so memory
stays flat whatever the sheet declares. Cell values follow openpyxl's (numbers, dates by number
format, booleans, shared and inline strings), except that a formula cell is always "=..." text,
which the row checks reject.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any
from xml.parsers import expat

from assistant.data.limits import (
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_SHARED_STRINGS,
    MAX_XLSX_MEMBERS,
    MAX_XLSX_SHEETS,
    MAX_XML_DEPTH,
    XLSX_EXPANSION,
    xlsx_unzipped_cap,
)
from assistant.data.readers import LongText
from assistant.data.report import DataError

# Each element costs Python callbacks (1-3 us): this bounds the CPU a file within the size caps can
# take to seconds. A 50,000-row sheet of 6 text columns has about a million elements.
MAX_XML_ELEMENTS = 3_000_000
_MAX_STYLES = 65_536  # Excel's own limit on cell formats; further ones are read as "General"
_MAX_ROW_CELLS = 16_384  # Excel's own limit on columns: a row with more cells was not made by a spreadsheet
UNREADABLE = "not a readable Excel file: open it in Excel and save it again as .xlsx, or export it as CSV UTF-8"
_CELL_REF = re.compile(r"([A-Za-z]{1,3})(\d*)$")


class _Text:
    """Character data gathered up to MAX_CELL_CHARS; past it, only counted."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = self.spaces = 0

    def add(self, data: str) -> None:
        if self.length <= MAX_CELL_CHARS:
            self.parts.append(data)
        self.length += len(data)
        self.spaces += data.count(" ") + data.count("\n") + data.count("\t")

    def value(self) -> str | LongText:
        return "".join(self.parts) if self.length <= MAX_CELL_CHARS else LongText(self.length, self.spaces)


class _Budget:
    """Elements left for the whole file: one hostile member cannot spend the CPU of ten."""

    def __init__(self):
        self.left = MAX_XML_ELEMENTS


def read_xlsx_rows(data: bytes, max_bytes: int) -> Iterator[tuple[int, list[Any]]]:
    """(sheet row number, cells) for each row of the first worksheet, in order; cells are at most
    MAX_COLUMNS + 1 long, the last one a marker when the row has a non-blank cell beyond."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise DataError(UNREADABLE) from None
    _check_members(members, max_bytes)
    budget = _Budget()
    try:
        workbook = _office_document(archive, budget)
        sheets, date1904 = _sheets(archive, workbook, budget)
        targets = _relationships(archive, workbook, budget)
        sheet = next((targets[rid][1] for _, rid in sheets if targets.get(rid, ("",))[0].endswith("/worksheet")), None)
        if sheet is None and "xl/worksheets/sheet1.xml" in archive.NameToInfo:
            sheet = "xl/worksheets/sheet1.xml"  # a workbook without relationships: the conventional name
        if sheet is None:
            raise DataError("the workbook has no worksheet: put the questions and answers on a sheet")
        strings = _shared_strings(archive, _target(targets, "/sharedStrings", workbook, "sharedStrings.xml"), budget)
        styles = _date_styles(archive, _target(targets, "/styles", workbook, "styles.xml"), budget)
        yield from _sheet_rows(archive, sheet, strings, styles, date1904, budget)
    except (zipfile.BadZipFile, expat.ExpatError, KeyError, ValueError, IndexError, EOFError, OSError,
            RuntimeError, NotImplementedError):
        raise DataError(UNREADABLE) from None


def _check_members(members: list[zipfile.ZipInfo], max_bytes: int) -> None:
    if len(members) > MAX_XLSX_MEMBERS:
        raise DataError(f"the Excel file holds {len(members):,} parts (an ordinary workbook has a few dozen; the "
                        f"limit is {MAX_XLSX_MEMBERS:,}); save the Q&A sheet on its own, or export it as CSV UTF-8")
    cap = xlsx_unzipped_cap(max_bytes)
    # zipfile stops each member at its declared size (and then fails its checksum), so these sums bind.
    total = sum(m.file_size for m in members)
    if total > cap:
        raise DataError(f"the Excel file unpacks to {total / 2**20:,.0f} MB, more than the limit of "
                        f"{cap / 2**20:,.0f} MB ({XLSX_EXPANSION}x the upload limit): it is not an ordinary "
                        "spreadsheet (a zip bomb?); save it again in Excel, or export it as CSV UTF-8")


def _parse(archive: zipfile.ZipFile, name: str, budget: _Budget, start: Callable[[str, dict], None],
           end: Callable[[str], None] | None = None, text: Callable[[str], None] | None = None,
           after_chunk: Callable[[], Iterator] | None = None) -> Iterator:
    """Stream one member through expat, calling start/end/text with local names; yields whatever
    after_chunk yields after each chunk (the rows parsed so far)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    depth = 0

    def on_start(tag: str, attrs: dict) -> None:
        nonlocal depth
        depth += 1
        budget.left -= 1
        if depth > MAX_XML_DEPTH:
            raise DataError(f"the Excel file's XML is nested more than {MAX_XML_DEPTH} levels deep (an ordinary "
                            "sheet nests 7): it is not an ordinary spreadsheet; export it as CSV UTF-8")
        if budget.left < 0:
            raise DataError(f"the Excel file holds more than {MAX_XML_ELEMENTS:,} XML elements (a 50,000-row sheet "
                            "of 6 columns has about a million): save only the Q&A columns, or export it as CSV UTF-8")
        start(tag.rpartition(" ")[2], attrs)

    def on_end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        if end is not None:
            end(tag.rpartition(" ")[2])

    def refuse_dtd(*_args) -> None:  # OOXML never has one; a DTD is how entity bombs get in
        raise DataError("the Excel file's XML declares a DTD, which a spreadsheet never does; export it as CSV UTF-8")

    parser.StartElementHandler, parser.EndElementHandler = on_start, on_end
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    if text is not None:
        parser.CharacterDataHandler = text
    with archive.open(name) as stream:
        while chunk := stream.read(1 << 16):
            parser.Parse(chunk, False)
            if after_chunk is not None:
                yield from after_chunk()
        parser.Parse(b"", True)
    if after_chunk is not None:
        yield from after_chunk()


def _run(parsing: Iterator) -> None:
    for _ in parsing:
        pass


def _office_document(archive: zipfile.ZipFile, budget: _Budget) -> str:
    found: list[str] = []

    def start(tag: str, attrs: dict) -> None:
        if tag == "Relationship" and attrs.get("Type", "").endswith("/officeDocument"):
            found.append(attrs.get("Target", ""))

    if "_rels/.rels" in archive.NameToInfo:
        _run(_parse(archive, "_rels/.rels", budget, start))
    return _resolve("", found[0]) if found else "xl/workbook.xml"


def _sheets(archive: zipfile.ZipFile, workbook: str, budget: _Budget) -> tuple[list[tuple[str, str]], bool]:
    sheets: list[tuple[str, str]] = []
    date1904 = [False]

    def start(tag: str, attrs: dict) -> None:
        if tag == "sheet":
            if len(sheets) >= MAX_XLSX_SHEETS:
                raise DataError(f"the workbook has more than {MAX_XLSX_SHEETS} sheets; only the first is read: save "
                                "the Q&A sheet on its own, or export it as CSV UTF-8")
            rid = next((v for k, v in attrs.items() if k.endswith(" id") or k == "id"), "")
            sheets.append((attrs.get("name", ""), rid))
        elif tag == "workbookPr":
            date1904[0] = attrs.get("date1904", "").lower() in ("1", "true")

    _run(_parse(archive, workbook, budget, start))
    return sheets, date1904[0]


def _relationships(archive: zipfile.ZipFile, workbook: str, budget: _Budget) -> dict[str, tuple[str, str]]:
    """id -> (type, member name) from the workbook's relationships."""
    folder, base = posixpath.split(workbook)
    rels = posixpath.join(folder, "_rels", base + ".rels")
    found: dict[str, tuple[str, str]] = {}

    def start(tag: str, attrs: dict) -> None:
        if tag == "Relationship" and len(found) < MAX_XLSX_MEMBERS:
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), _resolve(folder, attrs.get("Target", "")))

    if rels in archive.NameToInfo:
        _run(_parse(archive, rels, budget, start))
    return found


def _resolve(folder: str, target: str) -> str:
    path = target[1:] if target.startswith("/") else posixpath.join(folder, target)
    return posixpath.normpath(path)


def _target(targets: dict[str, tuple[str, str]], kind: str, workbook: str, default: str) -> str:
    return next((name for rel_type, name in targets.values() if rel_type.endswith(kind)),
                posixpath.join(posixpath.dirname(workbook), default))


def _shared_strings(archive: zipfile.ZipFile, name: str, budget: _Budget) -> list[str | LongText]:
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
            state["text"] = _Text()
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

    _run(_parse(archive, name, budget, start, end, text))
    return strings


def _date_styles(archive: zipfile.ZipFile, name: str, budget: _Budget) -> list[str]:
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

    _run(_parse(archive, name, budget, start, end))
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
        self.value: _Text | None = None  # the <v> text, or the inline string's
        self.formula: _Text | None = None
        self.phonetic = 0
        self.collecting: _Text | None = None
        self.done: list[tuple[int, list[Any]]] = []


def _sheet_rows(archive, name, strings, styles, date1904, budget) -> Iterator[tuple[int, list[Any]]]:
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
            s.value = s.collecting = _Text()
        elif tag == "f" and s.cells is not None:
            s.formula = s.collecting = _Text()
        elif tag == "is" and s.cells is not None:
            s.value = _Text()
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

    yield from _parse(archive, name, budget, start, end, text, rows_so_far)


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
