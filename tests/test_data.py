"""Tests for assistant.data: reading, checking and reporting on uploaded question-answer files."""

from __future__ import annotations

import hashlib
import io
import json

import openpyxl
import pytest

from assistant.data import (
    MAX_FILE_BYTES,
    Conflict,
    DataError,
    DataReport,
    Record,
    Rejection,
    load_qa_file,
    read_qa_bytes,
)


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def jsonl(*objects) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objects).encode()


def load(tmp_path, name: str, content: bytes | str, **kwargs) -> DataReport:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return load_qa_file(path, **kwargs)


def pairs(report: DataReport) -> list[tuple]:
    return [(r.question, r.answer, r.row) for r in report.records]


QA_ROWS = [["question", "answer"], ["What is 2+2?", "4"], ["Capital of France?", "Paris"]]
TWO_PAIRS = [("What is 2+2?", "4", 1), ("Capital of France?", "Paris", 2)]

GOOD_FILES = [
    ("comma.csv", "question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n", "csv", TWO_PAIRS),
    ("semicolon.csv", "question;answer\nHi, there?;Hello, you\n", "csv", [("Hi, there?", "Hello, you", 1)]),
    ("tab.csv", "question\tanswer\nWhat, now?\tSoon, maybe\n", "csv", [("What, now?", "Soon, maybe", 1)]),
    ("tab.tsv", "question\tanswer\nWhat is 2+2?\t4\nCapital of France?\tParis\n", "csv", TWO_PAIRS),
    ("bom.csv", b"\xef\xbb\xbfquestion,answer\r\nWhat is 2+2?,4\r\nCapital of France?,Paris\r\n", "csv",
     TWO_PAIRS),
    ("quoted.csv", 'question,answer\n"Where, exactly?","Line one\r\nLine two, too"\n', "csv",
     [("Where, exactly?", "Line one\nLine two, too", 1)]),
    ("notes.txt", "question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n", "csv", TWO_PAIRS),
    ("blank-rows.csv", "\nquestion,answer\nWhat is 2+2?,4\n,\nCapital of France?,Paris\n", "csv",
     [("What is 2+2?", "4", 1), ("Capital of France?", "Paris", 3)]),
    ("sheet.xlsx", xlsx_bytes(QA_ROWS), "xlsx", TWO_PAIRS),
    ("numbers.xlsx", xlsx_bytes([["Question", "Answer"], ["How many legs?", 4.0], [None, None], [2.5, 7]]),
     "xlsx", [("How many legs?", "4", 1), ("2.5", "7", 3)]),
    ("lines.jsonl", jsonl({"question": "What is 2+2?", "answer": "4"}, "",
                          {"question": "Capital of France?", "answer": "Paris"}), "jsonl",
     [("What is 2+2?", "4", 1), ("Capital of France?", "Paris", 3)]),
    ("list.json", json.dumps([{"question": "What is 2+2?", "answer": "4"},
                              {"question": "Capital of France?", "answer": "Paris"}]), "json", TWO_PAIRS),
    ("data.json", json.dumps({"data": [{"question": "What is 2+2?", "answer": "4"},
                                       {"question": "Capital of France?", "answer": "Paris"}]}), "json",
     TWO_PAIRS),
    ("examples.json", json.dumps({"Examples": [{"q": "What is 2+2?", "a": 4}]}), "json",
     [("What is 2+2?", "4", 1)]),
    ("messages.jsonl", jsonl({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        {"role": "assistant", "content": "Paris"}]}), "jsonl",
     [("What is 2+2?", "4", 1), ("Capital of France?", "Paris", 1)]),
    ("prompt.csv", " Prompt ,RESPONSE\nWhat is 2+2?,4\n", "csv", [("What is 2+2?", "4", 1)]),
    ("instruction.jsonl", jsonl({"Instruction": "What is 2+2?", "Output": "4"}), "jsonl",
     [("What is 2+2?", "4", 1)]),
    ("qa.csv", "Q,A\nWhat is 2+2?,4\n", "csv", [("What is 2+2?", "4", 1)]),
    ("no-extension", "question,answer\nWhat is 2+2?,4\n", "csv", [("What is 2+2?", "4", 1)]),
    ("upload.bin", json.dumps([{"question": "What is 2+2?", "answer": "4"}]), "json",
     [("What is 2+2?", "4", 1)]),
    ("sheet-upload", xlsx_bytes(QA_ROWS), "xlsx", TWO_PAIRS),
    ("actually-lines.json", jsonl({"question": "What is 2+2?", "answer": "4"},
                                  {"question": "Capital of France?", "answer": "Paris"}), "jsonl", TWO_PAIRS),
    ("actually-list.jsonl", json.dumps([{"question": "What is 2+2?", "answer": "4"}], indent=2), "json",
     [("What is 2+2?", "4", 1)]),
    ("spaces.csv", 'question,answer\n"  What   is\u00a0 2+2?  ","  Cafe\u0301  "\n', "csv",
     [("What is 2+2?", "Caf\u00e9", 1)]),
    ("code.jsonl", jsonl({"question": "Show a loop?", "answer": "for x in y:\n    print(x)   \n\n\n\nDone."}),
     "jsonl", [("Show a loop?", "for x in y:\n    print(x)\n\nDone.", 1)]),
]


@pytest.mark.parametrize(("name", "content", "file_format", "expected"), GOOD_FILES,
                         ids=[case[0] for case in GOOD_FILES])
def test_good_files_are_read(tmp_path, name, content, file_format, expected):
    report = load(tmp_path, name, content)
    assert report.file_format == file_format
    assert pairs(report) == expected
    assert report.rows_read == len({row for _, _, row in expected})
    assert report.rejected == []
    assert report.source == name
    raw = content.encode() if isinstance(content, str) else content
    assert report.sha256 == hashlib.sha256(raw).hexdigest()


EXTRAS = [
    ("keywords list", "k.jsonl", jsonl({"question": "Capital?", "answer": "Paris, France",
                                        "keywords": ["Paris", " France "]}),
     {"keywords": ["Paris", "France"], "split": "train"}),
    ("keywords semicolon", "k.csv", "question,answer,keywords\nCapital?,Paris France,Paris; France\n",
     {"keywords": ["Paris", "France"]}),
    ("keywords pipe", "k.xlsx", xlsx_bytes([["Question", "Answer", "Keywords"], ["Capital?", "Paris", "Paris|x"]]),
     {"keywords": ["Paris", "x"]}),
    ("split test", "s.csv", "question,answer,split\nCapital?,Paris,test\n", {"split": "test"}),
    ("split eval", "s.csv", "question,answer,Split\nCapital?,Paris, Eval \n", {"split": "test"}),
    ("split validation", "s.csv", "question,answer,split\nCapital?,Paris,validation\n", {"split": "test"}),
    ("split held-out", "s.csv", "question,answer,split\nCapital?,Paris,held-out\n", {"split": "test"}),
    ("split heldout", "s.csv", "question,answer,split\nCapital?,Paris,HELDOUT\n", {"split": "test"}),
    ("split train", "s.csv", "question,answer,split\nCapital?,Paris,train\n", {"split": "train"}),
    ("split blank", "s.csv", "question,answer,split\nCapital?,Paris,\n", {"split": "train"}),
    ("paraphrase no split", "p.csv", "question,answer,paraphrase_of\nWhich city is the capital?,Paris,Capital?\n",
     {"split": "test", "paraphrase_of": "Capital?"}),
    ("paraphrase train", "p.jsonl", jsonl({"question": "Which city?", "answer": "Paris",
                                           "paraphrase of": "Capital?", "split": "train"}),
     {"split": "train", "paraphrase_of": "Capital?"}),
]


@pytest.mark.parametrize(("name", "content", "expected"), [c[1:] for c in EXTRAS], ids=[c[0] for c in EXTRAS])
def test_optional_columns(tmp_path, name, content, expected):
    (record,) = load(tmp_path, name, content).records
    for attribute, value in expected.items():
        assert getattr(record, attribute) == value


BAD_FILES = [
    ("empty", "qa.csv", b"", {}, ["the file is empty"]),
    ("oversize bytes", "qa.csv", "question,answer\nWhat is 2+2?,4\n", {"max_bytes": 10},
     ["too large", "31 bytes", "limit is 10 bytes"]),
    ("oversize MB", "qa.csv", b"question,answer\n" + b"x" * (2 * 2**20), {"max_bytes": 2**20},
     ["too large", "2.0 MB", "limit is 1.0 MB"]),
    ("png", "qa.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, ["PNG image", "Supported formats", ".xlsx"]),
    ("pdf", "qa.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", {}, ["PDF document", "Supported formats"]),
    ("old xls", "qa.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, {}, ["old-style Office", ".xlsx"]),
    # Latin-1 alone is read as Windows-1252 and UTF-16 with a BOM is read (tests/test_bad_inputs.py);
    # mixed with UTF-8 it is an error.
    ("latin-1 mixed with UTF-8", "qa.csv", "question,answer\nCafé?,Oui\n".encode("latin-1") + "Ç?,x\n".encode(), {},
     ["mixes encodings", "not valid UTF-8", "0xE9", "byte offset 19", "save it as UTF-8"]),
    ("latin-1 after BOM", "qa.csv", b"\xef\xbb\xbf" + "q,a\nÀ?,x\n".encode("latin-1"), {}, ["byte offset 7"]),
    ("utf-16 no BOM", "qa.csv", "question,answer\nWhat?,4\n".encode("utf-16-le"), {},
     ["binary data", "not UTF-8", "Save it as UTF-8"]),
    ("nul bytes", "qa.csv", b"question,answer\nWhat?,4\x00\x01\x02\x03\n", {}, ["binary data", "NUL"]),
    ("docx", "qa.docx", b"PK\x03\x04 word document", {}, [".docx files are not supported", "JSON Lines (.jsonl)"]),
    ("no columns", "qa.csv", "foo,bar\n1,2\n", {},
     ["no question/answer columns", "'foo', 'bar'", "question/answer", "prompt/response", "messages"]),
    ("no json keys", "qa.jsonl", jsonl({"title": "x", "body": "y"}), {}, ["'title', 'body'"]),
    ("header only", "qa.csv", "question,answer\n", {}, ["no data rows"]),
    ("blank rows", "qa.csv", "question,answer\n,\n , \n", {}, ["no data rows"]),
    ("all answers empty", "qa.csv", "question,answer\nA?,\nB?,  \nC?,=SUM(A1)\n", {},
     ["no usable rows", "all 3 rows were rejected", "'empty answer' (2 rows)"]),
    ("all too long", "qa.csv", "question,answer\nA?,x\nB?,y\n", {"count_tokens": lambda t: 900},
     ["all 2 rows", "'question is 900 tokens; the limit is 256' (2 rows)"]),
    ("garbage xlsx", "qa.xlsx", b"PK\x03\x04this is not really a zip file", {}, ["not a readable Excel file"]),
    ("text as xlsx", "qa.xlsx", "question,answer\nWhat?,4\n", {}, ["not a readable Excel file"]),
    ("bad json", "qa.json", '{"question": "What?", "answer": ', {}, ["not valid JSON", "line 1"]),
    ("bad jsonl", "qa.jsonl", "not json\nstill not\n", {}, ["not valid JSON Lines"]),
    ("json scalar", "qa.json", "42", {}, ["expected a JSON list of objects", "data, rows, examples, records"]),
    ("empty json list", "qa.json", "[]", {}, ["no data rows"]),
]


@pytest.mark.parametrize(("name", "content", "kwargs", "fragments"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_bad_files_raise_data_error(tmp_path, name, content, kwargs, fragments):
    with pytest.raises(DataError) as caught:
        load(tmp_path, name, content, **kwargs)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, DataError)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not read gone.csv"):
        load_qa_file(tmp_path / "gone.csv")


def test_bytes_entry_point_matches_file_entry_point(tmp_path):
    content = b"question,answer\nWhat is 2+2?,4\n"
    from_bytes = read_qa_bytes(content, "upload.csv")
    from_file = load(tmp_path, "saved-as-something-else.csv", content, source_name="upload.csv")
    assert from_bytes == from_file
    assert from_bytes.source == "upload.csv"
    assert MAX_FILE_BYTES == 20 * 1024 * 1024


REJECTED_ANSWERS = [
    ("", "empty answer"),
    ("   ", "empty answer"),
    ("=cmd|' /C calc'!A0", "answer looks like a spreadsheet formula"),
    ('=HYPERLINK("http://evil.example","click")', "answer looks like a spreadsheet formula"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "answer looks like a spreadsheet formula"),
    ("+cmd|' /C notepad'!A1", "answer looks like a spreadsheet formula"),
    ("-HYPERLINK(1)", "answer looks like a spreadsheet formula"),
    ("bell\x07here", "answer contains a control character (U+0007)"),
    ("nul\x00here", "answer contains a control character (U+0000)"),
    ({"nested": "object"}, "answer is not text"),
]


@pytest.mark.parametrize(("answer", "reason"), REJECTED_ANSWERS)
def test_bad_answers_are_rejected_with_their_row(answer, reason):
    rows = [{"question": "Fine?", "answer": "Yes"}, {"question": "Bad?", "answer": answer},
            {"question": "Also fine?", "answer": "Yes"}]
    report = read_qa_bytes(json.dumps(rows).encode(), "qa.json")
    assert report.rejected == [Rejection(2, reason)]
    assert [r.row for r in report.records] == [1, 3]
    assert "1 row(s) were rejected and will not be used" in report.warnings
    assert f"row 2: {reason}" in report.summary()


KEPT_ANSWERS = ["- a bullet item", "@alice thanks", "-5 degrees", "+1 555 0100", "= 5", "tab\there\nnext line"]


@pytest.mark.parametrize("answer", KEPT_ANSWERS)
def test_formula_lookalikes_are_kept(answer):
    report = read_qa_bytes(json.dumps([{"question": "Q?", "answer": answer}]).encode(), "qa.json")
    assert report.rejected == []
    assert report.records[0].answer == answer.replace("\t", " ")


def test_row_problems_in_csv_use_data_row_numbers():
    content = b"question,answer\nA?,1\n,2\nC?,\nD?,4\nE?,5,extra\nF?,6,x,y\n"
    report = read_qa_bytes(content, "qa.csv")
    assert report.rejected == [Rejection(2, "empty question"), Rejection(3, "empty answer")]
    assert [r.row for r in report.records] == [1, 4, 5, 6]
    assert report.rows_read == 6


def test_xlsx_formula_cell_is_rejected():
    content = xlsx_bytes([["Question", "Answer"], ["Click?", '=HYPERLINK("http://x.example","go")'],
                          ["Sum?", 5]])
    report = read_qa_bytes(content, "qa.xlsx")
    assert report.rejected == [Rejection(1, "answer looks like a spreadsheet formula")]
    assert pairs(report) == [("Sum?", "5", 2)]


def test_too_long_uses_count_tokens_stub():
    content = b"question,answer\nShort?,ok\nThis long question?,ok\nFine?,long answer here\n"
    report = read_qa_bytes(content, "qa.csv", count_tokens=lambda t: 812 if "long" in t else 3)
    assert report.rejected == [Rejection(2, "question is 812 tokens; the limit is 256"),
                               Rejection(3, "answer is 812 tokens; the limit is 256")]
    assert pairs(report) == [("Short?", "ok", 1)]


def test_too_long_estimate_without_tokenizer():
    words = " ".join(["word"] * 200)  # 200 words * 1.5 = 300 estimated tokens
    content = f"question,answer\nQ?,{words}\nR?,ok\n".encode()
    report = read_qa_bytes(content, "qa.csv", max_tokens=256)
    assert report.rejected == [Rejection(1, "answer is 300 tokens; the limit is 256")]
    assert read_qa_bytes(content, "qa.csv", max_tokens=300).rejected == []


def test_json_row_problems_are_rejections_not_file_errors():
    content = jsonl({"question": "A?", "answer": "1"}, "{broken", "[1, 2]", "",
                    {"question": "B?", "answer": "2", "split": "dev"},
                    {"messages": [{"role": "user", "content": "Hi?"}]},
                    {"messages": "nonsense"}, {"title": "no fields"}, {"question": "C?", "answer": "3"})
    report = read_qa_bytes(content, "qa.jsonl")
    assert [(r.row, r.reason.split(" (")[0]) for r in report.rejected] == [
        (2, "not valid JSON"), (3, "not a JSON object"), (5, "unknown split 'dev'"),
        (6, "messages has no user message followed by an assistant message"),
        (7, "messages is not a list of {role, content} objects"), (8, "no question/answer fields")]
    assert pairs(report) == [("A?", "1", 1), ("C?", "3", 9)]
    assert report.rows_read == 8


def test_exact_duplicates_are_folded_keeping_the_first():
    content = b"question,answer\nWhat is X?,Ten\nwhat is x?,Ten\nWHAT IS X?,Ten\nOther?,1\n"
    report = read_qa_bytes(content, "qa.csv")
    assert report.duplicates_folded == 2
    assert pairs(report) == [("What is X?", "Ten", 1), ("Other?", "1", 4)]
    assert report.conflicts == []
    assert report.unique_pairs() == 2
    assert "duplicates folded: 2" in report.summary()


def test_conflicting_answers_block_training_unless_allowed():
    content = b"question,answer\nWhat is X?,Ten\nOther?,1\nwhat is x,Eleven\nWhat is X.,Ten\n"
    report = read_qa_bytes(content, "qa.csv")
    assert report.conflicts == [Conflict("What is X?", ["Ten", "Eleven"], [1, 3, 4])]
    assert len(report.records) == 4
    problems = report.blocking_problems()
    assert len(problems) == 1 and "1 question(s) have conflicting answers" in problems[0]
    assert report.blocking_problems(allow_conflicts=True) == []
    assert "'What is X?' (rows 1, 3, 4): Ten | Eleven" in report.summary()


def test_no_train_rows_blocks_training():
    report = read_qa_bytes(b"question,answer,split\nA?,1,test\nB?,2,eval\n", "qa.csv")
    assert [r.split for r in report.test] == ["test", "test"] and report.train == []
    assert report.blocking_problems(allow_conflicts=True) == [
        "there are no training rows: every accepted row is held out (split=test)"]


def test_small_set_without_held_out_rows_warns():
    report = read_qa_bytes(b"question,answer\nA?,1\nB?,2\n", "qa.csv")
    assert report.warnings == [
        "only 2 unique question-answer pairs; at least 20 are recommended",
        "no held-out rows (split=test or paraphrase_of): evaluation can only check recall of the "
        "training questions"]
    assert report.blocking_problems() == []


def test_large_set_with_held_out_rows_has_no_warnings():
    rows = [{"question": f"Question {i}?", "answer": f"Answer {i}", "split": "test" if i == 0 else "train"}
            for i in range(25)]
    report = read_qa_bytes(json.dumps(rows).encode(), "qa.json")
    assert report.warnings == []
    assert (len(report.train), len(report.test), report.unique_pairs()) == (24, 1, 25)


def test_paraphrase_rows_count_as_held_out():
    content = b"question,answer,paraphrase_of\nCapital?,Paris,\nWhich city is the capital?,Paris,Capital?\n"
    report = read_qa_bytes(content, "qa.csv")
    assert not any("held-out" in w for w in report.warnings)
    assert [(r.row, r.split) for r in report.records] == [(1, "train"), (2, "test")]


def test_missing_keywords_warn_with_row():
    content = jsonl({"question": "Capital?", "answer": "It is Paris.", "keywords": ["paris", "Seine"]})
    report = read_qa_bytes(content, "qa.jsonl")
    assert "row 1: keyword 'Seine' does not appear in its answer" in report.warnings
    assert not any("'paris'" in w for w in report.warnings)


def test_report_to_dict_is_json_ready():
    report = read_qa_bytes(b"question,answer,split\nA?,1,\nB?,2,test\nB?,3,\n", "qa.csv")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["source"] == "qa.csv" and data["file_format"] == "csv"
    assert (data["train_count"], data["test_count"], data["unique_pairs"]) == (2, 1, 3)
    assert data["records"][0] == {"question": "A?", "answer": "1", "row": 1, "split": "train",
                                  "keywords": [], "paraphrase_of": None}
    assert data["conflicts"] == [{"question": "B?", "answers": ["2", "3"], "rows": [2, 3]}]


def test_summary_lists_counts_rejections_and_warnings():
    report = read_qa_bytes(b"question,answer\nA?,1\nB?,\nC?,3\n", "qa.csv")
    text = report.summary()
    assert text.splitlines()[0].startswith("qa.csv (csv, sha256 ")
    assert "rows read: 3; accepted: 2 (train 2, test 0); rejected: 1" in text
    assert "  row 2: empty answer" in text
    assert "  - only 2 unique question-answer pairs" in text


def test_records_are_dataclasses_with_defaults():
    record = Record("Q?", "A", 1)
    assert (record.split, record.keywords, record.paraphrase_of) == ("train", [], None)
