"""A next-version job killed in the middle (SIGKILL: the OOM killer, a power cut, no chance to tidy
up) loses nothing: the serving version stays, nothing half-made is listed or serves, the answered
questions stay answered (so the next run takes them again), and the same job run again finishes.

The job is the app's own (assistant.jobs: `assistant adapters next NAME --progress-json` in a child
process, niced, read line by line), on the tiny random Gemma. Each kill waits for the progress
event of the phase it aims at, then kills at once: the phase it lands in is long enough (several
training steps, a report card, a gate) that the kill cannot miss it.
"""

from __future__ import annotations

import shutil

import pytest
from tiny import train_facts_v1, wait_for

from assistant import questions, serving
from assistant.fsutil import staging_owner
from assistant.jobs import JobManager
from assistant.registry import Registry
from assistant.store import Store

EPOCHS = 6  # one step an epoch on four rows: the kill after step 1 lands with five steps to go
JOB_TIMEOUT_S = 400  # a whole run on a busy 2-core machine takes about a minute
ANSWERS = {"What colour is the Zorblat fruit?": "The Zorblat fruit is deep orange.",
           "When is Quenth corn sown?": "Quenth corn is sown after the first rains."}


@pytest.fixture(scope="module")
def trained_v1(tiny_base, tmp_path_factory):
    """'facts' v1 trained from a file by the tiny recipe (no replay: quick), serving."""
    return train_facts_v1(tiny_base, tmp_path_factory, epochs=EPOCHS)


@pytest.fixture()
def farm(tiny_base, tmp_path, trained_v1):
    """v1 serving, two questions answered by trainers and waiting for the next version, the worker."""
    data_dir = tmp_path / "data"
    shutil.copytree(trained_v1, data_dir)
    store = Store.open(data_dir)
    ids = []
    for question, answer in ANSWERS.items():
        ids.append(questions.record_ask(store, "facts", question, "joseph"))
        questions.answer(store, ids[-1], answer, by="amina")
    jobs = JobManager(str(tiny_base.gguf_path), data_dir)
    yield data_dir, store, ids, jobs
    jobs.shutdown(timeout=2)


def _killed_at(jobs, starts_with: dict):
    """Start the next version; SIGKILL its worker at the first progress event whose fields start
    with `starts_with` ({"phase": "train"}); the job, once its watcher has seen the process die."""
    job = jobs.next_version("facts", by="amina")

    def reached():
        if job.finished:  # it ended before the phase: say how, not "timed out"
            raise AssertionError(f"the job ended ({job.state}: {job.error}) before {starts_with}")
        return any(all(str(e.get(k, "")).startswith(v) for k, v in starts_with.items()) for e in job.events)

    wait_for(reached, JOB_TIMEOUT_S, f"the progress event {starts_with}", poll=0.01)
    job.process.kill()
    wait_for(lambda: job.finished, 60, "the worker to see its process killed")
    assert job.state == "failed" and "killed (SIGKILL)" in job.error, job.error
    return job


def _nothing_changed(tiny_base, data_dir, store, ids, serving_before: bytes, versions: list[int]) -> Registry:
    """The checks every kill must pass; the registry as a restarted app opens it."""
    assert (data_dir / serving.SERVING_FILE).read_bytes() == serving_before, "serving.json untouched"
    restarted = Registry(tiny_base.sha256, data_dir)
    assert [a.version for a in restarted.versions("facts")] == versions
    assert restarted.get("facts").version == 1 and serving.read_state(data_dir)["serving"]["facts"] == 1
    assert [questions.get(store, i).status for i in ids] == ["answered", "answered"], "not trained: offered again"
    assert sorted(p["question"] for p in questions.answered_pairs(store, "facts")) == sorted(ANSWERS)
    restarted.sweep_staging()  # what every start does (Assistant.open)
    assert not restarted.staging_dir.exists() or list(restarted.staging_dir.iterdir()) == []
    return restarted


def test_a_next_version_killed_while_training_loses_nothing_and_runs_again(tiny_base, farm):
    data_dir, store, ids, jobs = farm
    serving_before = (data_dir / serving.SERVING_FILE).read_bytes()
    _killed_at(jobs, {"phase": "train"})
    _nothing_changed(tiny_base, data_dir, store, ids, serving_before, versions=[1])

    job = jobs.next_version("facts", by="amina")  # the same job again, to the end
    wait_for(lambda: job.finished, JOB_TIMEOUT_S, "the next version to finish")
    assert job.state == "done" and job.result["promoted"] and job.result["adapter"]["version"] == 2, job.error
    restarted = Registry(tiny_base.sha256, data_dir)
    assert restarted.get("facts").version == 2 and serving.read_state(data_dir)["serving"]["facts"] == 2
    assert [(questions.get(store, i).status, questions.get(store, i).trained_version) for i in ids] == [("trained", 2)] * 2
    assert questions.answered_pairs(store, "facts") == []


def test_a_next_version_killed_while_scoring_or_gating_leaves_no_partial_and_no_serving_candidate(tiny_base, farm):
    data_dir, store, ids, jobs = farm
    serving_before = (data_dir / serving.SERVING_FILE).read_bytes()
    # Scoring the staged adapter: its files exist only in staging, owned by the dead process.
    job = _killed_at(jobs, {"phase": "evaluate", "message": "report card:"})
    staging = Registry(tiny_base.sha256, data_dir).staging_dir
    assert [staging_owner(p.name) for p in staging.iterdir()] == [job.process.pid], "the leftover a start sweeps"
    _nothing_changed(tiny_base, data_dir, store, ids, serving_before, versions=[1])

    # Gating: the candidate is published (complete), but only the gate's decision may make it serve.
    _killed_at(jobs, {"phase": "gate"})
    restarted = _nothing_changed(tiny_base, data_dir, store, ids, serving_before, versions=[1, 2])
    rows = serving.describe_versions(restarted, "facts")
    assert [(r["status"], r["decision"]) for r in rows] == [("serving", None), ("candidate", None)]
    assert restarted.get_version("facts", 2).candidate and restarted.get_version("facts", 2).usable
