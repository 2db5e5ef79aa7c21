"""Reading one uploaded file: its size, format and encoding, then the reader for its format, then
the row checks; whole-file problems raise DataError with a message meant to be shown as is."""

from __future__ import annotations

import codecs
import hashlib
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from assistant.data import readers, records
from assistant.data.limits import MAX_FILE_BYTES
from assistant.data.report import DataError, DataReport, Rejection

SUPPORTED_FORMATS = "CSV (.csv, .tsv, .txt), Excel (.xlsx), JSON Lines (.jsonl) or JSON (.json)"

_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".json": "json"}
# Documents people commonly upload by mistake: naming the problem beats a confusing parse error.
_UNSUPPORTED_EXTENSIONS = {".docx", ".doc", ".xls", ".xlsm", ".ods", ".odt", ".pdf", ".rtf", ".pptx",
                           ".ppt", ".png", ".jpg", ".jpeg", ".gif", ".zip", ".gz", ".pages", ".numbers"}
_MAGIC = [(b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip archive"),
          (b"\xd0\xcf\x11\xe0", "an old-style Office file (.xls/.doc); save it as .xlsx or CSV")]
# A well-formed UTF-8 sequence for a non-ASCII character; Windows-1252 text almost never contains one.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")

codecs.register_error("assistant-latin-1", lambda e: (e.object[e.start:e.end].decode("latin-1"), e.end))


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
    from assistant.data.xlsx import read_xlsx_rows

    _check_size(len(data), max_bytes)
    file_format = _detect_format(data, source_name)
    encoding_note = None
    if file_format == "xlsx":
        columns, items = readers.table_items(read_xlsx_rows(data, max_bytes))
    else:
        text, encoding_note = _decode_text(data)
        if file_format == "csv":
            columns, items = readers.read_csv(text, source_name)
        else:
            file_format, columns, items = readers.read_json_text(text, file_format)
        del text
    if columns or items:  # an empty JSON list has no columns to complain about, only no rows
        _check_columns(columns)
    kept, rejected = records.build_records(items, count_tokens, max_tokens)
    if not kept:
        raise DataError(_unusable_message(len(items), rejected))
    kept, folded = records.fold_duplicates(kept)
    report = DataReport(source_name, hashlib.sha256(data).hexdigest(), file_format, len(items), kept,
                        rejected, folded, records.find_conflicts(kept), [])
    extra = [row for row, fields in items if isinstance(fields, dict) and fields.get(readers.EXTRA_CELLS)]
    report.warnings = ([encoding_note] * bool(encoding_note) + records.extra_cells_warning(extra)
                       + records.collect_warnings(report))
    return report


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
    keys = {readers.normalise_key(c) for c in columns}
    has = {name: any(a in keys for a in aliases) for name, aliases in records.FIELD_ALIASES.items()}
    if (has["question"] and has["answer"]) or has["messages"]:
        return
    named = [repr(_shorten(str(c))) for c in columns if str(c).strip()]
    found = ", ".join(named[:20]) + (f" and {len(named) - 20} more" if len(named) > 20 else "") or "none"
    raise DataError(f"no question/answer columns found (columns found: {found}). Use question/answer, "
                    "prompt/response, instruction/output or q/a, or a chat 'messages' list")


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _unusable_message(row_count: int, rejected: list[Rejection]) -> str:
    if not row_count:
        return "the file has no data rows"
    # Reasons carry numbers ("question is 812 tokens"); mask them so alike reasons count together.
    masked = Counter(re.sub(r"\d+", "#", r.reason) for r in rejected)
    top, count = masked.most_common(1)[0]
    example = next(r.reason for r in rejected if re.sub(r"\d+", "#", r.reason) == top)
    return (f"no usable rows: all {row_count} rows were rejected; the most common reason is "
            f"'{example}' ({count} rows)")
