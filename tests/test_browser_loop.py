"""The whole loop in a real browser, on the tiny model: a farmer asks what the adapter's Q&A does
not cover and gets no checked answer, gives a 👎 with a correction; a trainer answers it in
"Questions to answer" (the correction is the starting point), trains the next version from the
Versions section, the gate passes and promotes it; the farmer's same question now gets a checked
answer showing the new pair; one click rolls back to v1 and the question is not covered again.

Why the gate passes every time here: v1 (trained below, checked-only) never saw the new question,
so it answers none of the newly answered questions; the held-out set is one row (one question may
be lost); the random tiny base knows none of the general probes (retention is not compared). The
candidate cannot score below v1 on any set, whatever the tiny model decodes.
"""

from __future__ import annotations

import re

import pytest
from browser import ask, browser, choose_adapter, last_answer, running_app
from playwright.sync_api import expect
from qa_adapters import ORCHARD, jsonl
from test_browser_history import QUESTION, dislike_last_answer, farmer_and_trainer, log_in, send_correction
from test_browser_versions import _pick

from assistant.data import load_qa_file
from assistant.registry import Registry
from assistant.training import config, recipe

pytestmark = pytest.mark.browser
CORRECTION = "None in the last three weeks before picking."
ANSWER = "Spray no pesticide on Zorblat trees in the last three weeks before picking."  # the trainer's, from it


def _train_v1(tiny_base, data_dir, tmp_path) -> None:
    """orchard v1, trained by the tiny recipe (its settings are what the next version trains with)."""
    source = tmp_path / "orchard.jsonl"
    source.write_bytes(jsonl(ORCHARD))
    cfg = config.preset("tiny", replay_per_step=0, swap_replay=0, epochs=2)
    recipe.train(cfg, tiny_base, Registry(tiny_base.sha256, data_dir), load_qa_file(source), "orchard",
                 data_bytes=source.read_bytes(), answer_policy="checked")


def _row(table, version: str):
    """The versions table's row of one version (other rows name it too: "+1 added … from v1")."""
    return table.locator("tr").filter(has=table.page.get_by_role("cell", name=version, exact=True))


def test_a_question_without_a_checked_answer_is_answered_trained_promoted_and_rolled_back(tiny_base, tmp_path):
    data_dir = tmp_path / "data"
    _train_v1(tiny_base, data_dir, tmp_path)
    users = farmer_and_trainer(tmp_path)
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir), "--auth", str(users)) as url, \
            browser() as b:
        # 1. the farmer: no checked answer, 👎 and a correction
        farmer = log_in(b, url, "amina", "farmer password")
        choose_adapter(farmer, "orchard (v1)")
        ask(farmer, QUESTION)
        assert "No checked answer" in last_answer(farmer, "orchard v1")
        dislike_last_answer(farmer)
        send_correction(farmer, CORRECTION)
        expect(farmer.locator("#feedback-note")).to_contain_text("your correction goes to the trainers")

        # 2. the trainer answers it, starting from the correction
        trainer = log_in(b, url, "grace", "trainer password")
        trainer.get_by_role("tab", name="Train").click()
        item = trainer.locator("#queue-items label").filter(has_text="How much pesticide")
        expect(item).to_contain_text("👎")
        item.click()
        answer = trainer.locator("#queue-answer textarea")
        expect(answer).to_have_value(CORRECTION)
        answer.fill(ANSWER)
        trainer.locator("#queue-save").click()
        expect(trainer.locator("#queue-note")).to_contain_text("goes into orchard's next version")

        # 3. ... trains the next version: it passes the gate and serves
        trainer.get_by_text("Versions: which one serves, and the next version").click()
        _pick(trainer, "versions-adapter", "orchard")
        table = trainer.locator("#versions-table")
        expect(_row(table, "v1")).to_contain_text("✅ serving", timeout=30_000)
        trainer.locator("#versions-next").click()
        expect(trainer.locator("#versions-status")).to_contain_text("with 1 newly answered question", timeout=30_000)
        expect(trainer.locator("#versions-decision")).to_contain_text("v2 passed the gate and serves", timeout=240_000)
        expect(_row(table, "v2")).to_contain_text("✅ serving", timeout=30_000)
        expect(_row(table, "v2")).to_contain_text("+1 added, 0 replaced from v1 (answered by grace)")
        expect(_row(table, "v1")).to_contain_text("kept")

        # 4. the farmer's same question: now a checked answer, the new pair shown
        ask(farmer, QUESTION)
        checked = last_answer(farmer, "orchard v2")
        assert "✅ checked against the Q&A" in checked
        assert f"Checked against the Q&A of orchard v2: “{QUESTION}” → “{ANSWER}”" in checked
        assert checked.startswith(ANSWER) or "in the Q&A's words" not in checked
        expect(farmer.locator("#chat-list input")).to_have_value(re.compile(r"✓ 1 answered$"))

        # 5. one click rolls back to v1: the question is not covered again
        _pick(trainer, "versions-version", "v1 (kept)")
        trainer.locator("#versions-serve").click()
        expect(trainer.locator("#versions-status")).to_contain_text("orchard v1 serves now (no retraining)",
                                                                      timeout=30_000)
        expect(_row(table, "v1")).to_contain_text("✅ serving")
        ask(farmer, QUESTION)
        again = last_answer(farmer, "orchard v1")
        assert "No checked answer" in again and "Checked against" not in again
