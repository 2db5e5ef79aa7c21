"""The first worksheet of an .xlsx file, read within bounds.

openpyxl (even read-only) trusts what the file declares: a 1.7 KB sheet declaring
`<dimension ref="A1:XFD1048576"/>` made it build 16,384 cells a row (5 GB in 25 s), it builds a
whole `<row>` element however many cells it holds, and it unpacks any zip bomb. So this reader
checks the zip's declared sizes first, then streams the XML through expat (no DTDs, so no entity
expansion; bounded depth and element count) and keeps at most MAX_COLUMNS cells a row, so memory
stays flat whatever the sheet declares. Cell values follow openpyxl's (numbers, dates by number
format, booleans, shared and inline strings), except that a formula cell is always "=..." text,
which the row checks reject. This module finds the first worksheet; xml_stream parses within
bounds, xlsx_sheet reads the cells.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from assistant.data.limits import MAX_XLSX_MEMBERS, MAX_XLSX_SHEETS, XLSX_EXPANSION, xlsx_unzipped_cap
from assistant.data.report import DataError
from assistant.data.xlsx_sheet import date_styles, shared_strings, sheet_rows
from assistant.data.xml_stream import Budget, parse_member, run

UNREADABLE = "not a readable Excel file: open it in Excel and save it again as .xlsx, or export it as CSV UTF-8"


def read_xlsx_rows(data: bytes, max_bytes: int) -> Iterator[tuple[int, list[Any]]]:
    """(sheet row number, cells) for each row of the first worksheet, in order; cells are at most
    MAX_COLUMNS + 1 long, the last one a marker when the row has a non-blank cell beyond."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise DataError(UNREADABLE) from None
    _check_members(members, max_bytes)
    budget = Budget()
    try:
        workbook = _office_document(archive, budget)
        sheets, date1904 = _sheets(archive, workbook, budget)
        targets = _relationships(archive, workbook, budget)
        sheet = next((targets[rid][1] for _, rid in sheets if targets.get(rid, ("",))[0].endswith("/worksheet")), None)
        if sheet is None and "xl/worksheets/sheet1.xml" in archive.NameToInfo:
            sheet = "xl/worksheets/sheet1.xml"  # a workbook without relationships: the conventional name
        if sheet is None:
            raise DataError("the workbook has no worksheet: put the questions and answers on a sheet")
        strings = shared_strings(archive, _target(targets, "/sharedStrings", workbook, "sharedStrings.xml"), budget)
        styles = date_styles(archive, _target(targets, "/styles", workbook, "styles.xml"), budget)
        yield from sheet_rows(archive, sheet, strings, styles, date1904, budget)
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


def _office_document(archive: zipfile.ZipFile, budget: Budget) -> str:
    found: list[str] = []

    def start(tag: str, attrs: dict) -> None:
        if tag == "Relationship" and attrs.get("Type", "").endswith("/officeDocument"):
            found.append(attrs.get("Target", ""))

    if "_rels/.rels" in archive.NameToInfo:
        run(parse_member(archive, "_rels/.rels", budget, start))
    return _resolve("", found[0]) if found else "xl/workbook.xml"


def _sheets(archive: zipfile.ZipFile, workbook: str, budget: Budget) -> tuple[list[tuple[str, str]], bool]:
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

    run(parse_member(archive, workbook, budget, start))
    return sheets, date1904[0]


def _relationships(archive: zipfile.ZipFile, workbook: str, budget: Budget) -> dict[str, tuple[str, str]]:
    """id -> (type, member name) from the workbook's relationships."""
    folder, base = posixpath.split(workbook)
    rels = posixpath.join(folder, "_rels", base + ".rels")
    found: dict[str, tuple[str, str]] = {}

    def start(tag: str, attrs: dict) -> None:
        if tag == "Relationship" and len(found) < MAX_XLSX_MEMBERS:
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), _resolve(folder, attrs.get("Target", "")))

    if rels in archive.NameToInfo:
        run(parse_member(archive, rels, budget, start))
    return found


def _resolve(folder: str, target: str) -> str:
    path = target[1:] if target.startswith("/") else posixpath.join(folder, target)
    return posixpath.normpath(path)


def _target(targets: dict[str, tuple[str, str]], kind: str, workbook: str, default: str) -> str:
    return next((name for rel_type, name in targets.values() if rel_type.endswith(kind)),
                posixpath.join(posixpath.dirname(workbook), default))
