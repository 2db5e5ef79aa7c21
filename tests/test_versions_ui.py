"""The Train tab's Versions section, its handlers called as Gradio calls them (no browser)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import gradio as gr
import pytest

from assistant.auth import Access, Users, add_user
from assistant.registry import Registry
from assistant.serving import record_decision
from ui import versions


@pytest.fixture()
def assistant(tmp_path, tiny_registry):
    src = tiny_registry.get("alpha").path
    for version, extra in ((1, {}), (2, {}), (3, {"candidate": True})):
        dst = tmp_path / "adapters" / "crop" / f"v{version}"
        shutil.copytree(src, dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        (dst / "manifest.json").write_text(json.dumps({**manifest, "name": "crop", "version": version, **extra}))
    (tmp_path / "adapters" / "crop" / "v3" / "lineage.json").write_text(json.dumps(
        {"trained_from": {"name": "crop", "version": 2}, "added": [{"question": "Q?", "answered_by": "amina"}],
         "replaced": []}))
    registry = Registry(tiny_registry.base_sha256, tmp_path)
    record_decision(registry, "crop", 3, {"passed": False, "reasons": ["held-out recall fell from 80% to 60%"]}, False)
    synced = []
    return SimpleNamespace(registry=registry, store=None, sync_knowledge=lambda: synced.append(1), synced=synced)


class FakeJobs:
    def __init__(self):
        self.started, self.jobs = [], []

    def cancel(self, kind=None):
        return bool(self.jobs) and kind == "next"

    def next_version(self, name, by=""):
        self.started.append((name, by))
        job = SimpleNamespace(id="job-1", name=name, state="done", error=None, finished=True, last={},
                              result={"adapter": {"version": 3}, "decision": {
                                  "passed": True, "serving_version": 2, "reasons": [],
                                  "rows": [{"label": "Held-out recall", "questions": 5, "serving": 0.6,
                                            "candidate": 0.8, "allowed_drop": 0.2}]}})
        self.jobs.append(job)
        return job


def test_versions_table_shows_which_serves_the_candidate_and_why(assistant):
    table, dropdown = versions.show(assistant, "crop")
    assert dropdown.value == 2 and [c[1] for c in dropdown.choices] == [1, 2, 3]
    lines = table.splitlines()
    assert lines[2].startswith("| v3 | ⏸ candidate |") and "refused: held-out recall fell from 80% to 60%" in lines[2]
    assert "+1 added, 0 replaced from v2 (answered by amina)" in lines[2]
    assert lines[3].startswith("| v2 | ✅ serving |") and lines[4].startswith("| v1 | kept |")
    assert versions.show(assistant, "wheat")[0].startswith("❌ unknown adapter 'wheat'")


def test_one_click_rolls_back_or_promotes_and_refusals_are_shown(assistant):
    status, table, dropdown = versions.make_serving(assistant, "grace", "crop", 1)
    assert status == "**crop v1** serves now (no retraining)." and dropdown.value == 1 and assistant.synced == [1]
    assert "| v1 | ✅ serving |" in table
    assert versions.make_serving(assistant, "grace", "crop", 1)[0] == "❌ crop v1 already serves; nothing changed"
    assert versions.make_serving(assistant, "grace", "crop", 3)[0].startswith("**crop v3** serves now")
    assert versions.make_serving(assistant, "grace", None, None)[0] == "❌ Choose the adapter and the version first."
    assert Registry(assistant.registry.base_sha256, assistant.registry.data_dir).get("crop").version == 3


def test_a_rollback_in_the_ui_returns_what_the_newer_version_held_to_the_queue(assistant):
    from assistant import questions
    from assistant.store import Store

    assistant.store = Store.open(assistant.registry.data_dir)
    item = questions.record_ask(assistant.store, "crop", "Q?", "user:amina")
    questions.answer(assistant.store, item, "A.", "grace")
    lineage = assistant.registry.get_version("crop", 3).path / "lineage.json"
    lineage.write_text(json.dumps({"trained_from": {"name": "crop", "version": 2}, "added": [{"item_ids": [item]}]}))
    assert versions.make_serving(assistant, "grace", "crop", 3)[0] == "**crop v3** serves now (no retraining)."
    assert questions.get(assistant.store, item).status == "trained"
    status = versions.make_serving(assistant, "grace", "crop", 2)[0]
    assert status == ("**crop v2** serves now (no retraining). 1 answered question it does not hold will be trained "
                      "into the next version again.")
    assert questions.get(assistant.store, item).status == "answered"


def test_train_next_starts_a_worker_job_and_shows_the_gate(assistant):
    jobs = FakeJobs()
    assert versions.start_next(jobs, assistant, "grace", None) == ("❌ Choose the adapter first.", None)
    status, job_id = versions.start_next(jobs, assistant, "grace", "crop")
    assert job_id == "job-1" and jobs.started == [("crop", "grace")] and "crop** v2's next version" in status
    progress, decision = list(versions.watch(jobs, job_id))[-1]
    assert "data-state='done'" in progress and decision.startswith("### ✅ v3 passed the gate and serves")
    assert "| Held-out recall (5 questions) | 60% | **80%** | 20% |" in decision
    assert list(versions.watch(jobs, None)) == [("", "")]
    from assistant.store import Store

    assistant.store = Store.open(assistant.registry.data_dir)  # a queue with nothing answered for crop
    assert versions.start_next(jobs, assistant, "grace", "crop") == (
        "❌ No newly answered questions for **crop**: answer some in *Questions to answer* first.", None)
    assert len(jobs.started) == 1
    assert versions.cancel(jobs).startswith("Cancelling…") and versions.cancel(FakeJobs()) == "No next version is being trained."


def test_farmers_are_refused_on_the_server(tmp_path):
    users = tmp_path / "users.json"
    add_user(users, "grace", "trainer", "trainer password")
    add_user(users, "joseph", "farmer", "farmer password")
    access = Access(Users.load(users))
    handler = versions._as_trainer(access, "promote and roll back adapters", lambda user, n: f"{user} did {n}")
    assert handler(SimpleNamespace(username="Grace"), "crop") == "grace did crop"
    with pytest.raises(gr.Error, match=r"Your account \(joseph, farmer\) may not promote and roll back adapters"):
        handler(SimpleNamespace(username="joseph"), "crop")


def test_the_section_builds_inside_a_tab(assistant):
    with gr.Blocks() as demo, gr.Tab("Train"):
        versions.mount(assistant, FakeJobs(), Access(None))
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"versions-adapter", "versions-version", "versions-serve", "versions-next", "versions-table"} <= ids
    names = {fn.name for fn in demo.fns.values()}
    assert {"promote_and_roll_back_adapters", "train_adapters", "see_adapter_versions", "reattach_on_load"} <= names


class FakeJob(SimpleNamespace):
    @property
    def finished(self):
        return self.state not in ("queued", "running")


class RunningJobs:
    """A next-version job that moves on one poll at a time, `steps` polls, then passes its gate."""

    def __init__(self, state="running", steps=2):
        self.job = FakeJob(id="job-7", name="crop", kind="next", state=state, error=None, result=None,
                           last={"phase": "train", "message": "step 1 of 4"})
        self.jobs, self.polls, self.steps = [self.job], 0, steps

    def latest(self, kind):
        return self.job if kind == "next" else None

    def tick(self):
        self.polls += 1
        if self.polls >= self.steps:
            self.job.state, self.job.result = "done", {"adapter": {"version": 3}, "decision": {
                "passed": True, "serving_version": 2, "reasons": [], "rows": []}}


def _stream(jobs, assistant, monkeypatch):
    monkeypatch.setattr(versions.time, "sleep", lambda _s: jobs.tick())
    return list(versions.reattach(jobs, assistant))


def test_a_reload_reattaches_to_a_running_next_version(assistant, monkeypatch):
    jobs = RunningJobs()
    replies = _stream(jobs, assistant, monkeypatch)
    status, job_id, dropdown, progress, decision = replies[0]
    assert status == "Training **crop** v2's next version… (started before this page was loaded)" and job_id == "job-7"
    assert dropdown.value == "crop" and "crop" in [c[1] for c in dropdown.choices]
    assert "data-state='running'" in progress and "train: step 1 of 4" in progress and decision == ""
    # Only the first reply chooses the adapter: later ones leave a pick made meanwhile alone.
    assert all(reply[:3] == (gr.skip(),) * 3 for reply in replies[1:])
    assert "data-state='done'" in replies[-1][3] and replies[-1][4].startswith("### ✅ v3 passed the gate and serves")


def test_a_reload_reattaches_to_a_queued_next_version_too(assistant, monkeypatch):
    replies = _stream(RunningJobs(state="queued", steps=1), assistant, monkeypatch)
    assert replies[0][1] == "job-7" and "data-state='queued'" in replies[0][3] and "waiting for the worker" in replies[0][3]
    assert "data-state='done'" in replies[-1][3]


def test_a_reload_with_no_unfinished_next_version_changes_nothing(assistant, monkeypatch):
    nothing = [(gr.skip(),) * 5]
    assert _stream(RunningJobs(state="done"), assistant, monkeypatch) == nothing
    assert _stream(FakeJobsWithLatest(), assistant, monkeypatch) == nothing


class FakeJobsWithLatest(FakeJobs):
    def latest(self, kind):
        return None


def test_only_trainers_reattach_on_load_and_the_table_follows_a_reattached_job_only(assistant, tmp_path, monkeypatch):
    users = tmp_path / "users.json"
    add_user(users, "grace", "trainer", "trainer password")
    add_user(users, "joseph", "farmer", "farmer password")
    access, jobs = Access(Users.load(users)), RunningJobs()
    monkeypatch.setattr(versions.time, "sleep", lambda _s: jobs.tick())
    load = versions.on_load(access, jobs, assistant)
    assert list(load(SimpleNamespace(username="joseph"))) == [(gr.skip(),) * 5], "a farmer: nothing, and no error"
    assert list(load(SimpleNamespace(username="Grace")))[0][1] == "job-7"
    end = versions.on_load_end(access, assistant)
    table, dropdown = end(SimpleNamespace(username="grace"), "job-7", "crop")
    assert "| v2 | ✅ serving |" in table and dropdown.value == 2
    assert end(SimpleNamespace(username="grace"), None, None) == (gr.skip(), gr.skip()), "a fresh page: a pick stays"
    assert end(SimpleNamespace(username="joseph"), "job-7", "crop") == (gr.skip(), gr.skip())
