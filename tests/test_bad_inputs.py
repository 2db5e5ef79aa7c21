"""Bad inputs, table-driven: each one gets a specific message or a safe result, never a traceback,
and nothing is written outside the data directory. The corpus is tests/data/bad/ (regenerate with
scripts/make_bad_corpus.py); the huge cases are built here in tmp_path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.data import MAX_ROWS, DataError, load_qa_file
from assistant.registry import AdapterError, Registry, validate_name
from ui.train import start, validate_upload
from ui.upload_check import describe_report

BAD = Path(__file__).parent / "data" / "bad"
CP1252_NOTE = "read as Windows-1252"
ROWS = [("What is crème brûlée?", "A custard with a burnt sugar top — “crème” means cream."),
        ("How much does a bag of maïs seed cost?", "About 45 € per 25 kg bag."),
        ("When is the Fête des Vignerons?", "Every 20 to 25 years, in Vevey.")]


def tree(root: Path) -> dict[str, int]:
    """Every path under root with its size: compared before and after to prove nothing else was written."""
    return {str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1 for p in sorted(root.rglob("*"))}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=_env())


def _env() -> dict:
    import os

    root = Path(__file__).resolve().parent.parent
    return {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assistant: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --- files that are read: (file, expected (question, answer) pairs or a count, warning fragment or None)
READABLE = [
    ("excel_unicode_text_utf16le.txt", ROWS, None),  # Excel "Unicode Text": lossless, no warning
    ("utf16be_bom.csv", ROWS, None),
    ("utf8_bom.csv", ROWS, None),
    ("windows1252.csv", ROWS, CP1252_NOTE),  # Excel "CSV" on Windows: read, with a warning to check
    ("latin1.jsonl", [("Où pousse le maïs ?", "Dans les champs ensoleillés."),
                      ("Qu'est-ce qu'un épi ?", "La tête du maïs, ½ kg environ.")], CP1252_NOTE),
    ("stray_quotes.csv", [('How long is a 2" pipe?', "About 5 cm across"), ('Is "organic" a label?', "Yes")], None),
]


@pytest.mark.parametrize(("name", "expected", "warning"), READABLE, ids=[c[0] for c in READABLE])
def test_readable_files_decode_correctly(name, expected, warning):
    report = load_qa_file(BAD / name)
    assert [(r.question, r.answer) for r in report.records] == expected
    assert report.rejected == []
    encoding_warnings = [w for w in report.warnings if "Windows-1252" in w]
    assert encoding_warnings == ([w for w in report.warnings if warning in w] if warning else [])
    assert all("\ufffd" not in r.question + r.answer for r in report.records)


# --- files that fail as a whole: (file, fragments of the one message)
UNUSABLE = [
    ("mixed_utf8_cp1252.csv", ["mixes encodings", "line 3", "byte 0xEF", "save it as UTF-8"]),
    ("utf8_bom_then_latin1.csv", ["mixes encodings", "line 2", "not valid UTF-8"]),
    ("nul_bytes.csv", ["binary data (NUL bytes)", "not UTF-8"]),
    ("utf16le_no_bom.csv", ["binary data (NUL bytes)", "Save it as UTF-8"]),
    ("broken_quote_eof.csv", ["line 3 is never closed", "rows would run together", "fix the quotes"]),
    ("broken_quote_glued.csv", ["row starting on line 3", "closing quote is followed by more text", "line 4"]),
    ("formulas_only.csv", ["no usable rows", "all 3 rows", "looks like a spreadsheet formula"]),
]


@pytest.mark.parametrize(("name", "fragments"), UNUSABLE, ids=[c[0] for c in UNUSABLE])
def test_unusable_files_raise_a_specific_data_error(name, fragments):
    with pytest.raises(DataError) as caught:
        load_qa_file(BAD / name)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message and caught.value.__cause__ is None


def test_a_late_nul_byte_rejects_only_its_row():
    report = load_qa_file(BAD / "nul_late.csv")
    assert len(report.records) == 300
    assert [(r.row, r.reason) for r in report.rejected] == [(301, "answer contains a control character (U+0000)")]


def test_an_unquoted_comma_is_reported_not_silently_cut():
    report = load_qa_file(BAD / "unquoted_comma.csv")
    assert [r.answer for r in report.records] == ["Every 20 to 25 years", "4"]
    assert report.warnings[0].startswith("1 row(s) have more cells than the header has columns (rows 1)")
    assert "must be in quotes" in describe_report(report)


# --- formulas: rejected on the way in, so they are never shown or written back out
FORMULA_PAYLOADS = ["=cmd|", "+cmd|", "-2+cmd|", "@SUM(", "=HYPERLINK(", "=1+1"]


def test_formula_cells_are_rejected_and_never_shown():
    report = load_qa_file(BAD / "formulas.csv")
    assert [(r.row, r.reason) for r in report.rejected] == (
        [(n, "answer looks like a spreadsheet formula") for n in range(1, 7)]
        + [(11, "question looks like a spreadsheet formula")])
    # Text that only starts like a formula stays (a minus temperature, a mention, a phone number).
    assert [r.answer for r in report.records] == ["-5 degrees is common in April", "@alice answers them",
                                                   "+1 555 0100", "fine"]
    shown = describe_report(report) + report.summary() + json.dumps(report.to_dict(), ensure_ascii=False)
    for payload in FORMULA_PAYLOADS:
        assert payload not in shown
    # Nothing a spreadsheet would run starts any cell of the Train tab's table.
    for line in describe_report(report).splitlines():
        for cell in line.split("|"):
            assert not cell.strip().startswith(("=", "@")) and "cmd" not in cell


# --- huge inputs, built here
def test_rows_up_to_the_cap_are_read_in_seconds_and_reported_briefly(tmp_path):
    path = tmp_path / "big.csv"
    lines = [f"Question number {i}?,Answer number {i}." for i in range(MAX_ROWS)]  # 50,000: the row cap
    lines[5] = "Broken row?,"  # one rejection
    lines[7:49_000] = [f"Bad {i}?,=cmd|' /C calc'!A0" for i in range(7, 49_000)]  # ~49,000 rejections
    path.write_text("question,answer\n" + "\n".join(lines) + "\n")
    before = tree(tmp_path)
    started = time.monotonic()
    report = load_qa_file(path)
    assert time.monotonic() - started < 60
    assert report.rows_read == MAX_ROWS and len(report.records) == MAX_ROWS - 1 - 48_993
    summary = report.summary()
    assert summary.count("\n") < 80 and "…and 48944 more" in summary  # 50 listed, the rest counted
    assert describe_report(report).count("\n") < 200
    assert tree(tmp_path) == before


def test_one_row_over_the_cap_fails_the_file_with_the_cap_and_why(tmp_path):
    path = tmp_path / "over.csv"
    path.write_text("question,answer\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(MAX_ROWS + 1)))
    with pytest.raises(DataError, match=r"more than 50,000 data rows, the limit \(far more Q&A than one adapter"):
        load_qa_file(path)


def test_one_megabyte_cell_rejects_its_row_not_the_file(tmp_path):
    path = tmp_path / "huge-cell.csv"
    big = "x" * 2**20
    path.write_text(f'question,answer\nFine?,Yes\nHuge?,"{big}"\nHuge word list?,"{"word " * 200_000}"\n'
                    f"{'q' * 2**20}?,Huge question\n")
    report = load_qa_file(path)
    assert [(r.question, r.answer) for r in report.records] == [("Fine?", "Yes")]
    reasons = [r.reason for r in report.rejected]
    assert reasons[0] == "answer is 262144 tokens; the limit is 256"
    assert reasons[1].startswith("answer is ") and reasons[1].endswith("tokens; the limit is 256")
    assert reasons[2].startswith("question is ")
    markdown = describe_report(report)
    assert big not in markdown and len(markdown) < 5000


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "too-big.csv"
    with path.open("wb") as fh:
        fh.truncate(21 * 2**20)  # sparse: 21 MB of nothing
    with pytest.raises(DataError, match=r"too large: 21.0 MB; the limit is 20.0 MB"):
        load_qa_file(path)


# --- the CLI: one line on stderr, exit 1 for bad data, nothing written
CLI_CASES = [("windows1252.csv", 0, ["Windows-1252", "What is crème brûlée?", "45 €"]),
             ("excel_unicode_text_utf16le.txt", 0, ["What is crème brûlée?", "“crème”"]),
             ("mixed_utf8_cp1252.csv", 1, ["mixes encodings", "line 3"]),
             ("broken_quote_eof.csv", 1, ["never closed"]),
             ("nul_bytes.csv", 1, ["NUL bytes"])]


@pytest.mark.parametrize(("name", "code", "fragments"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_validate(tmp_path, name, code, fragments):
    shutil.copy(BAD / name, tmp_path / name)
    before = tree(tmp_path)
    result = run_cli("validate", "--no-lint", *(["--json"] if code == 0 else []), name, cwd=tmp_path)
    if code:
        assert_one_line_error(result, code, *fragments)
    else:
        assert result.returncode == 0 and "Traceback" not in result.stderr
        text = json.dumps(json.loads(result.stdout), ensure_ascii=False)
        for fragment in fragments:
            assert fragment in text
    assert tree(tmp_path) == before


def test_cli_validate_of_a_huge_cell_file_is_a_row_rejection(tmp_path):
    (tmp_path / "cell.csv").write_text(f'question,answer\nFine?,Yes\nHuge?,"{"x" * 2**20}"\n')
    result = run_cli("validate", "--no-lint", "cell.csv", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "row 2: answer is 262144 tokens; the limit is 256" in result.stdout
    assert len(result.stdout) < 5000


# --- adapter names: (name, fragment of the reason)
BAD_NAMES = [
    ("../x", "path separator"),
    ("a/b", "path separator"),
    ("..\\x", "path separator"),
    ("/etc/passwd", "path separator"),
    ("a\x00b", "control character (U+0000)"),
    ("alpha\n", "control character (U+000A)"),
    ("\u0430lpha", "CYRILLIC SMALL LETTER A"),  # looks like "alpha"
    ("x" * 300, "300 characters long"),
    ("", "it is empty"),
    (".hidden", "starts with '.'"),
    ("..", "starts with '.'"),
    ("Alpha", "uppercase"),
    ("my farm", "space"),
    ("none", "reserved"),
]


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES, ids=[repr(n[0])[:20] for n in BAD_NAMES])
def test_bad_adapter_names_are_refused_with_the_reason(name, reason):
    with pytest.raises(AdapterError) as caught:
        validate_name(name)
    message = str(caught.value)
    assert reason in message
    assert len(message) < 300 and "\n" not in message.replace("\\n", "")


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES[:8], ids=[repr(n[0])[:20] for n in BAD_NAMES[:8]])
def test_publishing_under_a_bad_name_writes_nothing(tmp_path, name, reason):
    data = tmp_path / "data"
    registry = Registry("0" * 64, data)
    staging = registry.new_staging()
    (staging / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    before = tree(tmp_path)
    with pytest.raises(AdapterError, match="invalid adapter name"):
        registry.publish(staging, name, {"prompt_format": "qa"})
    assert tree(tmp_path) == before


CLI_NAMES = [n for n in BAD_NAMES if "\x00" not in n[0]]  # a NUL cannot pass through argv


@pytest.mark.parametrize(("name", "reason"), CLI_NAMES, ids=[repr(n[0])[:20] for n in CLI_NAMES])
def test_cli_train_with_a_bad_name_is_one_line_and_writes_nothing(tmp_path, name, reason):
    shutil.copy(BAD / "utf8_bom.csv", tmp_path / "qa.csv")
    before = tree(tmp_path)
    result = run_cli("train", "--data", "qa.csv", "--name", name, "--data-dir", "data", "--preset", "tiny",
                     cwd=tmp_path)
    assert_one_line_error(result, 2, reason)
    assert tree(tmp_path) == before


def test_cli_train_progress_json_reports_a_bad_name_as_an_error_event(tmp_path):
    """The app's job runner reads this event: the Train tab shows the reason, not an exit code."""
    shutil.copy(BAD / "utf8_bom.csv", tmp_path / "qa.csv")
    result = run_cli("train", "--progress-json", "--data", "qa.csv", "--name", "../up", "--data-dir", "data",
                     cwd=tmp_path)
    assert result.returncode == 2
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["phase"] == "error" and "invalid adapter name '../up': it contains a path separator" in event["message"]
    assert not (tmp_path / "data").exists()


# --- the Train tab handlers
@pytest.mark.parametrize("name", ["excel_unicode_text_utf16le.txt", "windows1252.csv", "formulas.csv",
                                  "mixed_utf8_cp1252.csv", "broken_quote_glued.csv", "nul_bytes.csv"])
def test_train_tab_shows_a_report_or_one_message(tmp_path, name):
    path = tmp_path / name
    shutil.copy(BAD / name, path)
    markdown, accepted, suggested = validate_upload(str(path))
    if accepted is None:
        assert markdown.startswith("❌ ") and "\n" not in markdown
    else:
        assert "rows read" in markdown and suggested


class NoJobs:
    def start(self, *args, **kwargs):
        raise AssertionError("a bad name must never start a job")


UI_NAMES = [n for n in BAD_NAMES if n[0] != "alpha\n"]  # the tab trims what is typed: "alpha\n" is "alpha"


@pytest.mark.parametrize(("name", "reason"), UI_NAMES, ids=[repr(n[0])[:20] for n in UI_NAMES])
def test_train_tab_refuses_a_bad_name_before_copying_anything(tmp_path, name, reason):
    upload = tmp_path / "qa.csv"
    shutil.copy(BAD / "utf8_bom.csv", upload)
    before = tree(tmp_path)
    status = start(NoJobs(), tmp_path / "data" / "uploads", str(upload), name, "tiny", "", 8, 1e-3, 3, 0, False)
    assert status.startswith("❌ ") and reason in status
    assert tree(tmp_path) == before


# --- adapter directories with bad names on disk
def test_bad_directories_in_the_data_dir_never_stop_the_others(tmp_path, tiny_registry, tiny_base):
    data = tmp_path / "data"
    good = tiny_registry.get("alpha").path
    for dir_name in ("alpha", "\u0430lpha", ".ipynb_checkpoints", "Bad Name"):
        shutil.copytree(good, data / "adapters" / dir_name / "v1")
    (data / "adapters" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    listed = {a.name: a for a in Registry(tiny_base.sha256, data).list()}
    assert set(listed) == {"alpha", "\u0430lpha", "Bad Name"}  # dot-entries are not adapters
    assert listed["alpha"].usable
    assert "invalid adapter name" in listed["\u0430lpha"].problem
    assert not listed["Bad Name"].usable
