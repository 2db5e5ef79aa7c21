"""`assistant questions list|answer|dismiss` and `assistant backup`, as a trainer runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from assistant import history, questions
from assistant.store import DB_FILE, Store


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=120)


def test_list_answer_dismiss_and_backup_from_a_shell(tmp_path):
    data = tmp_path / "data"
    store = Store.open(data)
    chat, _, said = history.add_turn(store, "user:amina", None, "How deep is maize sown?",
                                     {"content": "10 m.", "question": "How deep is maize sown?", "adapter": "agriculture"})
    history.rate(store, "user:amina", said, -1, "About 5 cm.\x1b[2J")
    other = questions.record_ask(store, "agriculture", "Will it rain tomorrow?", "user:joseph")

    listed = run_cli("questions", "list", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    assert "How deep is maize sown?" in listed.stdout and "suggested: About 5 cm. [2J" in listed.stdout
    assert "\x1b" not in listed.stdout  # what a farmer typed cannot drive the terminal
    rows = [json.loads(line) for line in run_cli("questions", "list", "--json", "--data-dir", str(data)).stdout.splitlines()]
    maize = next(r for r in rows if r["question"] == "How deep is maize sown?")
    assert maize["flagged"] and maize["askers"] == 1

    done = run_cli("questions", "answer", str(maize["id"]), "--use-correction", "--by", "omar", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert questions.answered_pairs(store, "agriculture")[0]["answer"] == "About 5 cm.\x1b[2J"
    again = run_cli("questions", "dismiss", str(maize["id"]), "duplicate", "--by", "ruth", "--data-dir", str(data))
    assert again.returncode == 1 and "omar answered it" in again.stderr and "nothing was changed" in again.stderr
    assert run_cli("questions", "dismiss", str(other), "weather is out of scope", "--data-dir", str(data)).returncode == 0
    reopened = run_cli("questions", "reopen", str(maize["id"]), "--by", "ruth", "--data-dir", str(data))
    assert reopened.returncode == 0 and reopened.stdout.startswith(f"item {maize['id']} reopened by ruth"), reopened.stderr
    assert questions.get(store, maize["id"]).answer == "About 5 cm.\x1b[2J"  # the starting point of the correction
    twice = run_cli("questions", "reopen", str(maize["id"]), "--data-dir", str(data))
    assert twice.returncode == 1 and "open already (reopened by ruth" in twice.stderr
    alike = questions.record_ask(store, "agriculture", "maize sowing depth?", "user:joseph")
    done = run_cli("questions", "answer", str(maize["id"]), "About 4 cm.", "--also", f"{alike},{other}", "--data-dir",
                   str(data))
    assert done.returncode == 1 and f"item {alike} answered alike: maize sowing depth?" in done.stdout
    assert f"item {other} is no longer open" in done.stderr  # dismissed above: said, the others still answered
    assert [p["answer"] for p in questions.answered_pairs(store, "agriculture")] == ["About 4 cm.", "About 4 cm."]

    for args, message in [(("answer", "999", "x"), "no item 999"), (("answer", "abc", "x"), "'abc' is not an item number"),
                          (("answer", str(other)), "give the answer, or --use-correction"),
                          (("dismiss", str(other), " "), "the reason for dismissing is empty"),
                          (("dismiss", str(other), "again"), "no longer open")]:
        bad = run_cli("questions", *args, "--data-dir", str(data))
        assert bad.returncode in (1, 2) and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr

    backup = run_cli("backup", str(tmp_path / "copy.sqlite3"), "--data-dir", str(data))
    assert backup.returncode == 0, backup.stderr
    assert len(history.chats(Store(tmp_path / "copy.sqlite3"), "user:amina")) == 1
    refused = run_cli("backup", str(data / DB_FILE), "--data-dir", str(data))
    assert refused.returncode == 1 and "another file" in refused.stderr
    for command in (("questions", "list"), ("backup", str(tmp_path / "b"))):
        typo = run_cli(*command, "--data-dir", str(tmp_path / "dta"))
        assert typo.returncode == 1 and "there is no database in" in typo.stderr and "Traceback" not in typo.stderr
    assert not (tmp_path / "dta").exists()  # nothing made where nothing was
