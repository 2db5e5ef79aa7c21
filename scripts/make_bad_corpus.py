"""Write the bad-input corpus in tests/data/bad/: small files that real uploads get wrong.

Each file is what a user's tool really produces (Excel's "Unicode Text", a Windows "CSV", a file
pasted together from two sources, a missing quote, spreadsheet formulas). The huge cases (100,000
rows, a 1 MB cell) are built at test time instead (tests/test_bad_inputs.py), so the repository
stays small. Rerun after changing a case: `python scripts/make_bad_corpus.py`; the output is
deterministic, so an unchanged corpus shows no diff.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad"

ROWS = [("What is crème brûlée?", "A custard with a burnt sugar top — “crème” means cream."),
        ("How much does a bag of maïs seed cost?", "About 45 € per 25 kg bag."),
        ("When is the Fête des Vignerons?", "Every 20 to 25 years, in Vevey.")]
FORMULAS = ["=cmd|' /C calc'!A0", "+cmd|' /C notepad'!A1", "-2+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            '=HYPERLINK("http://evil.example","click me")', "=1+1"]


def csv_text(rows, delimiter=",") -> str:
    """What Excel writes: CRLF, and quotes only around cells that need them."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows([("question", "answer"), *rows])
    return buffer.getvalue()


def quoted(rows) -> str:
    return "question,answer\n" + "".join(f'"{_q(q)}","{_q(a)}"\n' for q, a in rows)


def _q(text: str) -> str:
    return text.replace('"', '""')


def corpus() -> dict[str, bytes]:
    files = {
        # Excel "Unicode Text": UTF-16 LE with a BOM, tab-separated, .txt
        "excel_unicode_text_utf16le.txt": b"\xff\xfe" + csv_text(ROWS, "\t").encode("utf-16-le"),
        "utf16be_bom.csv": b"\xfe\xff" + csv_text(ROWS).encode("utf-16-be"),
        "utf16le_no_bom.csv": csv_text(ROWS).encode("utf-16-le"),
        "utf8_bom.csv": b"\xef\xbb\xbf" + csv_text(ROWS).encode(),
        # Excel "CSV" on a Western-European Windows: cp1252 (smart quotes, euro sign, em dash)
        "windows1252.csv": csv_text(ROWS).encode("cp1252"),
        "latin1.jsonl": "".join(f'{{"question": "{q}", "answer": "{a}"}}\n' for q, a in
                                [("Où pousse le maïs ?", "Dans les champs ensoleillés."),
                                 ("Qu'est-ce qu'un épi ?", "La tête du maïs, ½ kg environ.")]).encode("latin-1"),
        # pasted together: UTF-8 rows, then rows from a Windows-1252 file (line 3 is the first bad one)
        "mixed_utf8_cp1252.csv": csv_text(ROWS[:1]).encode() + csv_text(ROWS[1:2]).split("\n", 1)[1].encode("cp1252"),
        "utf8_bom_then_latin1.csv": b"\xef\xbb\xbf" + csv_text(ROWS[2:]).encode("latin-1"),
        "nul_bytes.csv": b"question,answer\nWhat is this?,\x00\x00\x00\x00binary\x00junk\n",
        # a NUL far into an otherwise fine file: only its row goes
        "nul_late.csv": (quoted([(f"Filler question {i}?", "Filler answer.") for i in range(300)])
                         + '"Where is the NUL?","Right\x00here"\n').encode(),
        # the quote opened on line 3 never closes: rows 3-5 would silently become one cell
        "broken_quote_eof.csv": b'question,answer\nWhat is 2+2?,4\nWhere is Paris?,"In France.\n'
                                b'What is maize?,A cereal.\nWho grows it?,Farmers.\n',
        # the closing quote on line 3 is missing: line 3 and 4 would silently become one row
        "broken_quote_glued.csv": b'question,answer\n"What is 2+2?","4"\n"Where is Paris?,In France.\n'
                                  b'"What is maize?","A cereal."\n"Who grows it?","Farmers."\n',
        "stray_quotes.csv": b'question,answer\nHow long is a 2" pipe?,About 5 cm across\nIs "organic" a label?,Yes\n',
        "formulas.csv": quoted([("What should I type?", f) for f in FORMULAS]
                               + [("What is the frost date?", "-5 degrees is common in April"),
                                  ("Who answers questions?", "@alice answers them"),
                                  ("What is the hotline?", "+1 555 0100"),
                                  ("Formula in a question?", "fine")]).encode()
        + b'"=cmd|\' /C calc\'!A0","question side"\n',
        # Excel quotes a cell with a comma; a hand-written file often does not: the answer gets cut
        "unquoted_comma.csv": b"question,answer\nWhen is the Fete?,Every 20 to 25 years, in Vevey.\nWhat is 2+2?,4\n",
        "formulas_only.csv": quoted([("Type?", f) for f in FORMULAS[:3]]).encode(),
    }
    return files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in corpus().items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(corpus())} files to {OUT}")


if __name__ == "__main__":
    main()
