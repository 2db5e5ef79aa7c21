"""`assistant adapters list|promote|rollback|next`: versions listed, which serves, refusals in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.cli import main


@pytest.fixture()
def data(tmp_path, tiny_registry):
    src = tiny_registry.get("alpha").path
    for version in (1, 2):
        dst = tmp_path / "adapters" / "crop" / f"v{version}"
        shutil.copytree(src, dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        (dst / "manifest.json").write_text(json.dumps({**manifest, "name": "crop", "version": version}))
    return tmp_path


def _run(capsys, tiny_base, data, *args):
    code = main(["adapters", *args, "--base", str(tiny_base.gguf_path), "--data-dir", str(data)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_list_rollback_promote(capsys, tiny_base, data):
    code, out, _ = _run(capsys, tiny_base, data, "list", "crop")
    assert code == 0 and [line.split()[:4] for line in out.splitlines()] == [
        ["crop", "v1", "local", "kept"], ["crop", "v2", "local", "serving"]]
    code, out, _ = _run(capsys, tiny_base, data, "rollback", "crop", "v1", "--by", "amina")
    assert code == 0 and out.strip() == "crop v1 serves now (rolled back; no retraining)"
    code, out, _ = _run(capsys, tiny_base, data, "list", "crop", "--json")
    assert [(v["version"], v["serving"]) for v in json.loads(out)] == [(1, True), (2, False)]
    code, out, _ = _run(capsys, tiny_base, data, "--json")  # every adapter, as before: the serving version
    assert [(a["name"], a["version"]) for a in json.loads(out) if a["name"] == "crop"] == [("crop", 1)]
    code, out, _ = _run(capsys, tiny_base, data, "promote", "crop", "2")
    assert code == 0 and "crop v2 serves now (promoted" in out


def test_rollback_and_promote_keep_the_queue_in_step(capsys, tiny_base, data):
    from assistant import questions
    from assistant.registry import LINEAGE
    from assistant.store import Store

    store = Store.open(data)
    item = questions.record_ask(store, "crop", "How deep is maize sown?", "user:amina")
    questions.answer(store, item, "5 cm", "omar")
    (data / "adapters" / "crop" / "v2" / LINEAGE).write_text(json.dumps(
        {"trained_from": {"name": "crop", "version": 1}, "added": [{"item_ids": [item]}], "replaced": []}))
    code, _, err = _run(capsys, tiny_base, data, "rollback", "crop", "1")
    assert code == 0 and questions.get(store, item).status == "answered" and err == ""  # v2 never served marked
    _run(capsys, tiny_base, data, "promote", "crop", "2")
    assert (questions.get(store, item).status, questions.get(store, item).trained_version) == ("trained", 2)
    code, out, err = _run(capsys, tiny_base, data, "rollback", "crop", "1")
    assert code == 0 and out.strip() == "crop v1 serves now (rolled back; no retraining)"
    assert "1 answered question that v1 does not hold will be trained into the next version again" in err
    assert questions.get(store, item).status == "answered"


@pytest.mark.parametrize("args, message", [
    (("promote", "crop", "2"), "assistant: crop v2 already serves; nothing changed"),
    (("rollback", "crop", "5"), "assistant: 'crop' has no version 5; it has v1, v2"),
    (("rollback", "crop", "latest"), "assistant: invalid version 'latest': give a version number such as 2 or v2"),
    (("promote", "crop", "1"), "assistant: crop v1 is older than the serving v2: roll back to it instead"),
    (("promote", "wheat", "1"), "assistant: unknown adapter 'wheat'; available: crop"),
    (("rollback", "crop"), "assistant: adapters rollback needs NAME and VERSION, e.g. `assistant adapters rollback crop 2`"),
    (("promote",), "assistant: adapters promote needs the adapter's name"),
    (("list", "crop", "2"), "assistant: adapters list takes no VERSION"),
    (("next", "wheat"), "assistant: unknown adapter 'wheat'"),
])
def test_refusals_are_one_line_and_change_nothing(capsys, tiny_base, data, args, message):
    code, _, err = _run(capsys, tiny_base, data, *args)
    assert code == 2 and err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert not (data / "serving.json").exists()


def test_next_refuses_a_bad_pairs_file_before_loading_the_model(capsys, tiny_base, data, tmp_path):
    pairs = tmp_path / "pairs.json"
    for content, message in (("[]", "no newly answered questions"), ("{not json", "is not JSON"),
                             ('[{"question": "Q?", "answer": ""}]', "answered pair 1 has no answer")):
        pairs.write_text(content)
        code, _, err = _run(capsys, tiny_base, data, "next", "crop", "--pairs", str(pairs))
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = _run(capsys, tiny_base, data, "next", "crop", "--pairs", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
