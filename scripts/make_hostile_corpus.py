"""Write the hostile-file corpus: small files built to exhaust a reader's memory or CPU.

Each one is what an attacker with a trainer's login would upload (issue 12 reproduced the first
two against the server: a 1.7 KB sheet declaring A1:XFD1048576 took it from 1.1 to 5.2 GB; a
653 KB zip bomb took 169 s of CPU). The files are built at test time (tests/test_hostile_files.py)
into a temporary directory, never committed: the zip bomb alone unpacks to 300 MB. Large parts
are streamed, so building one costs little memory.

    python scripts/make_hostile_corpus.py OUT_DIR [NAME ...]   # all of them, or the named ones
"""

from __future__ import annotations

import json
import struct
import sys
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
SHEET_HEAD = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>'
SHEET_TAIL = "</sheetData></worksheet>"


def _cell(text: str) -> str:
    return f'<c t="inlineStr"><is><t>{text}</t></is></c>'


def _row(*texts: str) -> str:
    return "<row>" + "".join(_cell(t) for t in texts) + "</row>"


HEADER_AND_ROWS = _row("question", "answer") + _row("What is maize?", "A cereal.") + _row("Who grows it?", "Farmers.")


def _repeat(piece: str, times: int) -> Iterable[str]:
    """`piece` `times` times, in chunks of about 1 MB."""
    per_chunk = max(1, 2**20 // len(piece))
    while times > 0:
        n = min(per_chunk, times)
        yield piece * n
        times -= n


def write_xlsx(path: Path, sheet: Iterable[str] | str, sheets: int = 1, extra_members: int = 0,
               shared_strings: Iterable[str] | None = None) -> None:
    """A minimal workbook: the first sheet's XML streamed from `sheet`; `sheets` sheets listed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/'
                            f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for n in range(1, sheets + 1))
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
                    f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                    f'{overrides}</Types>')
        zf.writestr("_rels/.rels", f'<?xml version="1.0"?><Relationships xmlns="{RELS}"><Relationship Id="rId1" '
                    f'Type="{DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        listed = "".join(f'<sheet name="S{n}" sheetId="{n}" r:id="rId{n}"/>' for n in range(1, sheets + 1))
        zf.writestr("xl/workbook.xml", f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}">'
                    f"<sheets>{listed}</sheets></workbook>")
        rels = "".join(f'<Relationship Id="rId{n}" Type="{DOC_RELS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                       for n in range(1, sheets + 1))
        if shared_strings is not None:
            rels += f'<Relationship Id="rIdS" Type="{DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
        zf.writestr("xl/_rels/workbook.xml.rels", f'<?xml version="1.0"?><Relationships xmlns="{RELS}">{rels}</Relationships>')
        with zf.open("xl/worksheets/sheet1.xml", "w") as fh:
            for chunk in [sheet] if isinstance(sheet, str) else sheet:
                fh.write(chunk.encode())
        for n in range(2, sheets + 1):
            zf.writestr(f"xl/worksheets/sheet{n}.xml", SHEET_HEAD + _row("x") + SHEET_TAIL)
        if shared_strings is not None:
            with zf.open("xl/sharedStrings.xml", "w") as fh:
                for chunk in shared_strings:
                    fh.write(chunk.encode())
        for n in range(extra_members):
            zf.writestr(f"xl/media/pad{n}.xml", "<x/>")


def _sheet(*parts: Iterable[str] | str) -> Iterable[str]:
    yield SHEET_HEAD
    for part in parts:
        yield from [part] if isinstance(part, str) else part
    yield SHEET_TAIL


def _lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite a member's uncompressed size in the central directory (what readers go by)."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    count, at = struct.unpack_from("<H", data, end + 10)[0], struct.unpack_from("<I", data, end + 16)[0]
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        if bytes(data[at + 46:at + 46 + name_len]) == member.encode():
            struct.pack_into("<I", data, at + 24, declared)
            break
        at += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))


# --- the cases: name -> function writing the file at the given path

def xlsx_dimension_bomb(path: Path) -> None:
    # The 1.7 KB sheet of issue 12: openpyxl built 16,384 cells for each of 1,048,576 declared rows.
    write_xlsx(path, SHEET_HEAD.replace("<sheetData>", '<dimension ref="A1:XFD1048576"/><sheetData>')
               + HEADER_AND_ROWS + SHEET_TAIL)


def xlsx_far_cells(path: Path) -> None:
    # No dimension, but every row has a cell in column XFD: openpyxl pads each row to 16,384 cells.
    far = '<c r="XFD{n}" t="inlineStr"><is><t>far</t></is></c>'
    rows = (f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>Question {n}?</t></is></c>'
            f'<c r="B{n}" t="inlineStr"><is><t>Answer {n}.</t></is></c>{far.format(n=n)}</row>' for n in range(2, 5002))
    write_xlsx(path, _sheet('<row r="1">' + _cell("question") + _cell("answer") + "</row>", rows))


def xlsx_zip_bomb(path: Path) -> None:
    # 300 MB of sheet XML (2.7 million rows) in a file of a few hundred KB.
    write_xlsx(path, _sheet(_row("question", "answer"), _repeat(_row("What is it?", "It is."), 2_700_000)))


def xlsx_zip_bomb_lying(path: Path) -> None:
    # The same bomb, its central directory claiming the sheet unpacks to 1 MB.
    xlsx_zip_bomb(path)
    _lie_about_size(path, "xl/worksheets/sheet1.xml", 2**20)


def xlsx_element_flood(path: Path) -> None:
    # Within the unpacked-size cap (90 MB), but 15 million empty rows: each is a parser callback.
    write_xlsx(path, _sheet(HEADER_AND_ROWS, _repeat("<row/>", 15_000_000)))


def xlsx_deep_xml(path: Path) -> None:
    # An element nested 100,000 deep inside a cell: a tree builder keeps every level.
    write_xlsx(path, _sheet(HEADER_AND_ROWS, "<row><c>" + "<x>" * 100_000 + "</x>" * 100_000 + "</c></row>"))


def xlsx_entity_bomb(path: Path) -> None:
    # "Billion laughs": ten levels of entities, each ten of the one before.
    entities = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{n} "{("&e" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    write_xlsx(path, f'<?xml version="1.0"?><!DOCTYPE worksheet [{entities}]>' + SHEET_HEAD.split("?>", 1)[1]
               + _row("question", "answer") + _row("Laugh?", "&e9;") + SHEET_TAIL)


def xlsx_huge_row(path: Path) -> None:
    # One row of a million cells (40 MB of XML): openpyxl builds the whole row element first.
    write_xlsx(path, _sheet(HEADER_AND_ROWS, "<row>" + _cell("Wide?") + _cell("Very."),
                            _repeat("<c><v>1</v></c>", 1_000_000), "</row>"))


def xlsx_huge_cell(path: Path) -> None:
    # One 50 MB answer (inline text); the other rows are fine.
    write_xlsx(path, _sheet(HEADER_AND_ROWS, '<row><c t="inlineStr"><is><t>Huge?</t></is></c><c t="inlineStr"><is><t>',
                            _repeat("ab ", 17_000_000), "</t></is></c></row>"))


def xlsx_many_sheets(path: Path) -> None:
    write_xlsx(path, SHEET_HEAD + HEADER_AND_ROWS + SHEET_TAIL, sheets=300)


def xlsx_many_members(path: Path) -> None:
    write_xlsx(path, SHEET_HEAD + HEADER_AND_ROWS + SHEET_TAIL, extra_members=3_000)


def xlsx_100k_rows(path: Path) -> None:
    write_xlsx(path, _sheet(_row("question", "answer"),
                            (_row(f"Question {n}?", f"Answer {n}.") for n in range(100_000))))


def xlsx_shared_string_flood(path: Path) -> None:
    # Two million distinct texts in the shared string table (read before any row).
    strings = ["<sst xmlns=\"" + MAIN + "\">", ("".join(f"<si><t>{n}</t></si>" for n in range(k, k + 50_000))
                                               for k in range(0, 2_000_000, 50_000)), "</sst>"]
    write_xlsx(path, SHEET_HEAD + HEADER_AND_ROWS + SHEET_TAIL,
               shared_strings=(chunk for part in strings for chunk in ([part] if isinstance(part, str) else part)))


def json_deep(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def json_value_flood(path: Path) -> None:
    # Five million values in 10 MB: ~60 bytes each once parsed.
    path.write_text("[" + "0," * 5_000_000 + "0]")


def json_100k_rows(path: Path) -> None:
    path.write_text(json.dumps([{"question": f"Question {n}?", "answer": f"Answer {n}."} for n in range(100_000)]))


def json_huge_cell(path: Path) -> None:
    # One 15 MB answer of two-letter words: splitting it into words would cost ~300 MB.
    path.write_text(json.dumps([{"question": "Huge?", "answer": "ab " * 5_000_000},
                                {"question": "What is maize?", "answer": "A cereal."}]))


def jsonl_100k_lines(path: Path) -> None:
    path.write_text("".join(json.dumps({"question": f"Question {n}?", "answer": f"Answer {n}."}) + "\n"
                            for n in range(100_000)))


def jsonl_deep_lines(path: Path) -> None:
    # Good rows, and lines nested 50,000 deep (a RecursionError for a plain json.loads).
    good = [json.dumps({"question": f"Question {n}?", "answer": f"Answer {n}."}) for n in range(3)]
    deep = '{"question": "Deep?", "answer": ' + "[" * 50_000 + "]" * 50_000 + "}"
    path.write_text("\n".join(good + [deep] * 20) + "\n")


def jsonl_keyword_flood(path: Path) -> None:
    rows = [{"question": "Tagged?", "answer": "Yes.", "keywords": "a;" * 1_000_000},
            {"question": "What is maize?", "answer": "A cereal."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def csv_100k_rows(path: Path) -> None:
    path.write_text("question,answer\n" + "".join(f"Question {n}?,Answer {n}.\n" for n in range(100_000)))


def csv_huge_row(path: Path) -> None:
    # One 10 MB line of 3.5 million two-letter cells (~200 MB as a list of strings).
    path.write_text("question,answer\n" + "ab," * 3_500_000 + "ab\n")


def csv_unclosed_quote(path: Path) -> None:
    path.write_text('question,answer\nWhat is maize?,A cereal.\nWhere?,"In the field\n'
                    + "".join(f"Question {n}?,Answer {n}.\n" for n in range(500_000)))


def csv_wide_header(path: Path) -> None:
    path.write_text(",".join(f"c{n}" for n in range(10_000)) + ",question,answer\n" + "x," * 10_000 + "Q?,A.\n")


def csv_deep_messages(path: Path) -> None:
    deep = '"' + ("[" * 20_000 + "]" * 20_000) + '"'
    path.write_text("messages\n" + f"{deep}\n" * 10
                    + '"[{""role"": ""user"", ""content"": ""Hi?""}, {""role"": ""assistant"", ""content"": ""Hello.""}]"\n')


CASES: dict[str, Callable[[Path], None]] = {
    "dimension_bomb.xlsx": xlsx_dimension_bomb, "far_cells.xlsx": xlsx_far_cells, "zip_bomb.xlsx": xlsx_zip_bomb,
    "zip_bomb_lying.xlsx": xlsx_zip_bomb_lying, "element_flood.xlsx": xlsx_element_flood,
    "deep_xml.xlsx": xlsx_deep_xml, "entity_bomb.xlsx": xlsx_entity_bomb, "huge_row.xlsx": xlsx_huge_row,
    "huge_cell.xlsx": xlsx_huge_cell, "many_sheets.xlsx": xlsx_many_sheets, "many_members.xlsx": xlsx_many_members,
    "rows_100k.xlsx": xlsx_100k_rows, "shared_string_flood.xlsx": xlsx_shared_string_flood,
    "deep.json": json_deep, "value_flood.json": json_value_flood, "rows_100k.json": json_100k_rows,
    "huge_cell.json": json_huge_cell, "lines_100k.jsonl": jsonl_100k_lines, "deep_lines.jsonl": jsonl_deep_lines,
    "keyword_flood.jsonl": jsonl_keyword_flood, "rows_100k.csv": csv_100k_rows, "huge_row.csv": csv_huge_row,
    "unclosed_quote.csv": csv_unclosed_quote, "wide_header.csv": csv_wide_header,
    "deep_messages.csv": csv_deep_messages,
}


def build(name: str, out_dir: Path) -> Path:
    path = Path(out_dir) / name
    CASES[name](path)
    return path


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in argv[1:] or CASES:
        path = build(name, out)
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
