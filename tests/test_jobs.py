"""The worker queue: training and export jobs run one at a time, the rest wait and can be cancelled."""

from __future__ import annotations

import shutil

from tiny import wait_for

from assistant.jobs import JobManager


def test_jobs_run_one_at_a_time_in_order_and_waiting_ones_can_be_cancelled(tiny_base, tiny_adapters, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_adapters, data_dir)
    facts = tmp_path / "facts.csv"
    facts.write_text("question,answer\n" + "".join(f"What is fact {i}?,Fact {i} is true.\n" for i in range(4)))
    busy = []
    jobs = JobManager(str(tiny_base.gguf_path), data_dir, on_busy=busy.append)
    training = jobs.start(facts, "facts", "tiny", {"replay_per_step": 0, "epochs": 200, "early_stop": False})
    first_export = jobs.export("alpha", "lora-gguf")
    second_export = jobs.export("beta", "lora-gguf")
    assert training.state == "running"
    assert (first_export.state, jobs.position(first_export)) == ("queued", 1)
    assert (second_export.state, jobs.position(second_export)) == ("queued", 2)
    assert jobs.latest("export") is second_export and jobs.latest("train") is training

    assert jobs.cancel(second_export)  # waiting: removed from the line, never started
    assert second_export.state == "cancelled" and second_export.process is None
    assert jobs.position(first_export) == 1

    wait_for(lambda: training.last.get("phase") == "train", 300, "training to reach its steps")
    assert jobs.cancel(kind="train")
    wait_for(lambda: training.finished, 120, "the cancelled training to stop")
    assert training.state == "cancelled"
    # The export waiting behind it starts on its own and finishes, verified, in the worker process.
    wait_for(lambda: first_export.finished, 600, "the queued export")
    assert first_export.state == "done", first_export.error
    assert first_export.result["passed"] is True
    assert all(p.startswith(str(data_dir / "exports")) for p in first_export.result["files"])
    assert busy == [True, False, True, False]  # cores handed to each job and back
    assert not (data_dir / "adapters" / "facts").exists()  # the cancelled training published nothing


def test_export_worker_killed_mid_export_fails_cleanly_and_a_retry_works(tiny_base, tiny_adapters, tmp_path):
    import os
    import signal

    data_dir = tmp_path / "data"
    shutil.copytree(tiny_adapters, data_dir)
    jobs = JobManager(str(tiny_base.gguf_path), data_dir)
    job = jobs.export("alpha", "gguf-f16")
    wait_for(lambda: job.finished or job.last.get("phase") == "verify", 300, "the export to reach verification")
    assert not job.finished, job.error
    job.process.send_signal(signal.SIGKILL)
    wait_for(lambda: job.finished, 60, "the killed export to be noticed")
    assert job.state == "failed" and "killed (SIGKILL)" in job.error and "no partial export" in job.error
    exports = data_dir / "exports"
    assert not [p for p in exports.iterdir() if not p.name.startswith(".")]  # nothing under a final name
    retry = jobs.export("alpha", "gguf-f16")
    wait_for(lambda: retry.finished, 600, "the retried export")
    assert retry.state == "done" and retry.result["passed"] is True, retry.error
    assert [p.name for p in exports.iterdir() if not p.name.startswith(".")] == [os.path.basename(retry.result["path"])]
