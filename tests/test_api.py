"""The OpenAI-compatible API of the running app (tiny model), through real clients: the official
`openai` package (whole and streamed answers, multi-turn, usage, the x_assistant extras), curl (the
server-sent events, every kind of bad input, a 10 MB body), and the keys: no key, a bad key, a
farmer on a trainer's endpoint, a revoked key, and a client throttled after failed keys.

One app for the whole module (each start costs seconds): a users file with a farmer, a trainer
and a user whose key is revoked mid-test; `--trusted-proxy 127.0.0.1`, so a test can speak for a
client address of its own (X-Forwarded-For) and the throttled one never slows the others.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from browser import running_app

from assistant.auth import add_user
from assistant.engines import GenerationSettings

pytestmark = pytest.mark.browser  # it runs the app in a subprocess, like the browser tests
CURL = shutil.which("curl") or "/usr/bin/curl"
QUESTION = "What grows well in sandy soil?"
MAX_TOKENS = 24


def _issue_key(users, name: str, *more: str) -> str:
    done = subprocess.run([sys.executable, "-m", "assistant", "user", "key", name, "--file", str(users), *more],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def app(request, tmp_path_factory, tiny_base, tiny_adapters):
    from qa_adapters import ORCHARD, publish_tiny_qa_adapter
    from tiny import publish_tiny_adapter

    from assistant.registry import Registry

    data_dir = tmp_path_factory.mktemp("api-data") / "data"
    shutil.copytree(tiny_adapters, data_dir)  # alpha and beta, plus one a trainer may delete
    publish_tiny_adapter(Registry(tiny_base.sha256, data_dir), tiny_base, "doomed", seed=3)
    publish_tiny_qa_adapter(Registry(tiny_base.sha256, data_dir), tiny_base, "orchard", ORCHARD, seed=5,
                            answer_policy="checked")  # answers only what its Q&A covers
    users = tmp_path_factory.mktemp("api-auth") / "users.json"
    for name, role in (("fay", "farmer"), ("tom", "trainer"), ("rev", "farmer")):
        add_user(users, name, role, f"password-of-{name}")
    keys = {name: _issue_key(users, name) for name in ("fay", "tom", "rev")}
    with running_app("--base", str(tiny_base.gguf_path), "--data-dir", str(data_dir), "--auth", str(users),
                     "--trusted-proxy", "127.0.0.1", request=request) as url:
        yield {"url": url.rstrip("/"), "keys": keys, "users": users, "data_dir": data_dir}


@pytest.fixture(scope="module")
def expected(tiny_llamacpp, tiny_base, tiny_adapters):
    """The answer service's own answer, in this process (no HTTP), to a conversation with an adapter,
    as the API's content shows it: the tiny adapters have no Q&A, so it ends with the note that it
    was not checked (`with_notes=False`: without it)."""
    from api import notes
    from assistant.registry import Registry
    from assistant.service import Assistant

    service = Assistant(tiny_base, tiny_llamacpp, Registry(tiny_base.sha256, tiny_adapters))

    def answer(messages, adapter: str | None, max_tokens: int = MAX_TOKENS, streamed: bool = False,
               with_notes: bool = True) -> str:
        """The answer's final text, or (`streamed`) its pieces as they were yielded: they differ when
        the service cuts a loop at the end, after the repeated words were streamed."""
        answer = service.answer(messages, adapter, GenerationSettings(max_tokens=max_tokens))
        pieces = "".join(answer)
        return (pieces if streamed else answer.text) + (notes.tail(answer) if with_notes else "")

    return answer


def _openai(app, key: str = "fay"):
    from openai import OpenAI

    return OpenAI(base_url=app["url"] + "/v1", api_key=app["keys"][key], max_retries=0, timeout=120)


def curl(app, *args: str, key: str | None = "fay", client: str | None = None) -> tuple[int, str, dict]:
    """(status, body, headers) of one curl call to the app."""
    headers = ["-H", f"Authorization: Bearer {app['keys'][key]}"] if key else []
    if client:
        headers += ["-H", f"X-Forwarded-For: {client}"]
    done = subprocess.run([CURL, "-sS", "-N", "-D", "-", "--max-time", "120", *headers, *args],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n\n")  # text=True: curl's CRLFs read as LFs
    while head.startswith("HTTP/1.1 100"):  # curl prints the interim answer to Expect: 100-continue too
        head, _, body = body.partition("\n\n")
    lines = head.split("\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), body, {k.lower(): v for k, v in fields.items()}


def _post(app, body, **kw) -> tuple[int, str, dict]:
    data = body if isinstance(body, str) else json.dumps(body)
    return curl(app, "-X", "POST", app["url"] + "/v1/chat/completions", "-H", "Content-Type: application/json",
                "--data-binary", data, **kw)


# the openai client ------------------------------------------------------------------------------

def test_models_are_the_usable_adapters_base_and_auto(app, tiny_base):
    models = {m.id: m for m in _openai(app).models.list().data}
    assert {"base", "auto", "alpha", "beta"} <= set(models)
    assert not {"xylandia", "agriculture"} & set(models)  # shipped for another base: unusable, not listed
    extra = models["alpha"].model_extra["x_assistant"]
    assert (models["alpha"].object, extra["version"], extra["base"]["sha256"]) == ("model", 1, tiny_base.sha256)


def test_a_whole_answer_is_the_services_answer_with_usage_and_extras(app, expected):
    messages = [{"role": "user", "content": QUESTION}]
    done = _openai(app).chat.completions.create(model="alpha", messages=messages, max_tokens=MAX_TOKENS)
    assert done.choices[0].message.content == expected(messages, "alpha")
    assert done.choices[0].finish_reason in ("stop", "length")
    usage = done.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= MAX_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    extra = done.model_extra["x_assistant"]
    assert (extra["adapter"], extra["version"], extra["chosen_by"]) == ("alpha", 1, "request")
    assert extra["label"].startswith("alpha v1")
    assert extra["sources"] == []


def test_a_streamed_answer_is_the_same_answer_in_chunks(app, expected):
    messages = [{"role": "user", "content": QUESTION}]
    chunks = list(_openai(app).chat.completions.create(model="beta", messages=messages, max_tokens=MAX_TOKENS,
                                                       stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["x_assistant"]["adapter"] == "beta"  # the extras come on the first chunk
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected(messages, "beta", streamed=True)
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing in (["stop"], ["length"])
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason).model_extra["x_assistant"]
    assert final["adapter"] == "beta" and "checked" in final and final["label"].startswith("beta v1 · ")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_multi_turn_on_the_base(app, expected):
    messages = [{"role": "system", "content": "You answer farmers."},
                {"role": "user", "content": "What is maize?"},
                {"role": "assistant", "content": "A cereal."},
                {"role": "user", "content": "When is it sown?"}]
    done = _openai(app).chat.completions.create(model="base", messages=messages, max_tokens=MAX_TOKENS)
    assert done.choices[0].message.content == expected(messages, None)
    assert done.model_extra["x_assistant"]["adapter"] is None


def test_grounding_and_routing_extras(app):
    messages = [{"role": "user", "content": QUESTION}]
    done = _openai(app).chat.completions.create(model="auto", messages=messages, max_tokens=4,
                                                extra_body={"x_assistant": {"ground": True}})
    extra = done.model_extra["x_assistant"]
    assert extra["chosen_by"] == "auto" and extra["route_reason"]
    assert "grounded" in extra["label"]  # "· grounded in N Q&A pairs" or "· not grounded: why"
    assert {"adapter", "version", "chosen_by", "route_reason", "label", "sources", "grounding_note", "checked",
            "policy", "suggestions"} <= set(extra)


def test_max_tokens_and_stop(app):
    client = _openai(app)
    short = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": QUESTION}],
                                           max_tokens=2)
    assert short.usage.completion_tokens <= 2
    words_only = {"x_assistant": {"notes": False}}  # the model's words, without the trust note after them
    whole = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": QUESTION}],
                                           max_tokens=MAX_TOKENS, extra_body=words_only).choices[0].message.content
    if len(whole) > 3:
        cut = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": QUESTION}],
                                             max_tokens=MAX_TOKENS, stop=[whole[2:4]], extra_body=words_only)
        assert cut.choices[0].message.content == whole[:2].strip() and cut.choices[0].finish_reason == "stop"


def test_errors_reach_the_openai_client_as_its_exceptions(app):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        _openai(app).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        _openai(app).chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=0)
    assert caught.value.body["param"] == "max_tokens"
    with pytest.raises(openai.AuthenticationError):
        _openai(app).with_options(api_key="fa-wrong").models.list()


# curl -------------------------------------------------------------------------------------------

def test_curl_streams_server_sent_events(app, expected):
    body = {"model": "alpha", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": MAX_TOKENS,
            "stream": True}
    status, text, headers = _post(app, body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == \
        expected(body["messages"], "alpha", streamed=True)


BAD = [  # (what, body, status, param or code it must name)
    ("malformed JSON", '{"model": "alpha", "messages": [', 400, "invalid_json"),
    ("not an object", "[1, 2]", 400, "invalid_json"),
    ("no messages", {"model": "alpha"}, 400, "messages"),
    ("empty content", {"model": "alpha", "messages": [{"role": "user", "content": ""}]}, 400, "messages[0].content"),
    ("non-string content", {"model": "alpha", "messages": [{"role": "user", "content": {"a": 1}}]}, 400,
     "messages[0].content"),
    ("unknown role", {"model": "alpha", "messages": [{"role": "wizard", "content": "hi"}]}, 400,
     "messages[0].role"),
    ("max_tokens 0", {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400,
     "max_tokens"),
    ("max_tokens 1e9", {"model": "alpha", "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": 10**9}, 400, "max_tokens"),
    ("path in model", {"model": "../../etc/passwd", "messages": [{"role": "user", "content": "hi"}]}, 404,
     "model_not_found"),
    ("unknown model", {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
    ("ends with the assistant", {"model": "alpha", "messages": [{"role": "user", "content": "hi"},
                                                                {"role": "assistant", "content": "yo"}]}, 400,
     "messages"),
    ("too long", {"model": "alpha", "messages": [{"role": "user", "content": "maize " * 2500}]}, 400,
     "context_length_exceeded"),
]


@pytest.mark.parametrize("what, body, status, named", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_4xx_in_openai_shape(app, what, body, status, named):
    got, text, headers = _post(app, body)
    assert got == status, text
    assert headers["content-type"] == "application/json"
    error = json.loads(text)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert named in (error["param"], error["code"]), error
    assert "Traceback" not in text


def test_a_body_not_sent_as_json_is_415(app):
    body = json.dumps({"model": "alpha", "messages": [{"role": "user", "content": "hi"}]})
    status, text, _ = curl(app, "-X", "POST", app["url"] + "/v1/chat/completions", "-d", body)  # curl's form type
    assert status == 415 and json.loads(text)["error"]["code"] == "unsupported_media_type"


def test_a_10_mb_body_is_refused_before_it_is_read(app, tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b'{"model": "alpha", "messages": [{"role": "user", "content": "' + b"a" * (10 * 2**20) + b'"}]}')
    status, text, _ = curl(app, "-X", "POST", app["url"] + "/v1/chat/completions", "-H",
                           "Content-Type: application/json", "-H", "Expect: 100-continue", "--data-binary", f"@{big}")
    assert status == 413 and json.loads(text)["error"]["code"] == "request_too_large"
    assert _post(app, {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})[0] == 200


# keys and roles ---------------------------------------------------------------------------------

def test_no_key_or_a_bad_key_is_401_and_a_farmer_may_not_delete(app):
    status, text, headers = curl(app, app["url"] + "/v1/models", key=None, client="198.51.100.1")
    assert status == 401 and json.loads(text)["error"]["code"] == "missing_api_key"
    assert headers["www-authenticate"] == "Bearer"
    status, text, _ = curl(app, "-H", "Authorization: Bearer fa-not-a-key", app["url"] + "/v1/models", key=None,
                           client="198.51.100.2")
    assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"
    status, text, _ = curl(app, "-X", "DELETE", app["url"] + "/v1/models/doomed", key="fay")
    assert status == 403 and json.loads(text)["error"]["code"] == "insufficient_role"


def test_a_trainer_deletes_an_adapter(app):
    status, text, _ = curl(app, "-X", "DELETE", app["url"] + "/v1/models/doomed", key="tom")
    assert status == 200 and json.loads(text)["deleted"] is True
    assert "doomed" not in {m.id for m in _openai(app).models.list().data}
    status, text, _ = curl(app, "-X", "DELETE", app["url"] + "/v1/models/doomed", key="tom")
    assert status == 404 and json.loads(text)["error"]["code"] == "model_not_found"


def test_a_revoked_key_is_refused_at_once(app):
    assert curl(app, app["url"] + "/v1/models", key="rev")[0] == 200
    _issue_key(app["users"], "rev", "--revoke")
    status, text, _ = curl(app, app["url"] + "/v1/models", key="rev", client="198.51.100.3")
    assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"


def test_a_client_whose_keys_keep_failing_waits_and_nobody_else_does(app):
    from assistant.throttle import FREE_FAILURES

    guesser = "203.0.113.9"
    for _ in range(FREE_FAILURES):  # people mistype: these cost nothing
        assert curl(app, "-H", "Authorization: Bearer fa-guess", app["url"] + "/v1/models", key=None,
                    client=guesser)[0] == 401
    # From here each failure makes the next wait double (2 s, 4 s, 8 s...): within a few tries a
    # guess lands inside the wait, however slow this machine is.
    for _ in range(8):
        status, text, headers = curl(app, "-H", "Authorization: Bearer fa-guess", app["url"] + "/v1/models",
                                     key=None, client=guesser)
        if status == 429:
            break
        assert status == 401
    assert status == 429 and json.loads(text)["error"]["code"] == "too_many_failed_keys"
    assert int(headers["retry-after"]) >= 1
    assert curl(app, app["url"] + "/v1/models", key="fay", client=guesser)[0] == 429  # not even checked
    assert curl(app, app["url"] + "/v1/models", key="fay", client="203.0.113.10")[0] == 200  # others: as usual


def test_the_answer_policy_reaches_api_clients_checked_or_withheld_with_suggestions(app):
    """The same policy as the chat tab: a covered question is checked against its pair (shown in the
    extras); an uncovered one gets no made-up answer, the closest checked questions, and is recorded."""
    from qa_adapters import ORCHARD

    from assistant.store import Store

    client = _openai(app)
    covered = client.chat.completions.create(model="orchard", max_tokens=MAX_TOKENS,
                                             messages=[{"role": "user", "content": "Which colour does the Zorblat fruit have?"}])
    extra = covered.model_extra["x_assistant"]
    assert (extra["policy"], extra["checked"], extra["withheld"]) == ("checked", True, False)
    assert extra["sources"][0]["question"] == "What colour is the Zorblat fruit?" and extra["suggestions"] == []
    text = covered.choices[0].message.content
    assert text == "The Zorblat fruit is violet." or not extra["replaced"]  # the pair's words, or agreeing ones

    question = "How much pesticide may I spray on Zorblat trees before picking?"
    chunks = list(client.chat.completions.create(model="orchard", stream=True, max_tokens=MAX_TOKENS,
                                                 messages=[{"role": "user", "content": question}]))
    final = chunks[-1].model_extra["x_assistant"]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (final["checked"], final["withheld"]) == (False, True) and "don't have a checked answer" in streamed
    assert final["suggestions"] and set(final["suggestions"]) <= {r["question"] for r in ORCHARD}
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert question in [q.question for q in Store.open(app["data_dir"]).open_questions("orchard")]


NOT_CHECKED_ALPHA = "\n\n⚠️ Not checked — may be wrong: alpha's Q&A does not cover this question."


def test_the_content_itself_says_whether_an_answer_was_checked(app, expected):
    """What a farmer sees in a client that shows `content` only (Open WebUI, curl): an unchecked
    answer ends with a plain note, whole or streamed; a checked one has none; a withheld one lists
    the checked questions its text points to. With notes off, the model's words alone."""
    client = _openai(app)
    messages = [{"role": "user", "content": QUESTION}]
    words = expected(messages, "alpha", with_notes=False)
    whole = client.chat.completions.create(model="alpha", messages=messages, max_tokens=MAX_TOKENS)
    assert whole.choices[0].message.content == words + NOT_CHECKED_ALPHA
    chunks = list(client.chat.completions.create(model="alpha", messages=messages, max_tokens=MAX_TOKENS, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces[-1] == NOT_CHECKED_ALPHA and "".join(pieces[:-1]) == expected(messages, "alpha", streamed=True,
                                                                                 with_notes=False)
    plain = client.chat.completions.create(model="alpha", messages=messages, max_tokens=MAX_TOKENS,
                                           extra_body={"x_assistant": {"notes": False}})
    assert plain.choices[0].message.content == words

    covered = client.chat.completions.create(model="orchard", max_tokens=MAX_TOKENS,
                                             messages=[{"role": "user", "content": "What colour is the Zorblat fruit?"}])
    assert covered.model_extra["x_assistant"]["checked"] is True
    assert "Not checked" not in covered.choices[0].message.content

    withheld = client.chat.completions.create(model="orchard", max_tokens=MAX_TOKENS, messages=[
        {"role": "user", "content": "How much pesticide may I spray on Zorblat trees before picking?"}])
    text, extra = withheld.choices[0].message.content, withheld.model_extra["x_assistant"]
    assert extra["withheld"] and extra["suggestions"] and "checked questions below" in text
    assert text.endswith("".join(f"\n- {q}" for q in extra["suggestions"][:3]))


def test_a_note_or_a_withheld_answer_sent_back_never_reaches_the_prompt(app):
    """Clients send the whole conversation back, content as shown: the model must get the same
    prompt as if the note had never been added and the withheld turn never given."""
    client = _openai(app)
    words_only = {"x_assistant": {"notes": False}}

    def answer(messages, **more) -> str:
        return client.chat.completions.create(model="base", messages=messages, max_tokens=MAX_TOKENS,
                                              **more).choices[0].message.content

    first = [{"role": "user", "content": "What is maize?"}]
    shown, said = answer(first), answer(first, extra_body=words_only)
    assert shown.startswith(said) and "Not checked" in shown[len(said):]
    then = {"role": "user", "content": "When is it sown?"}
    assert answer([*first, {"role": "assistant", "content": shown}, then], extra_body=words_only) == \
        answer([*first, {"role": "assistant", "content": said}, then], extra_body=words_only)

    asked = {"role": "user", "content": "How much pesticide may I spray on Zorblat trees?"}
    withheld = client.chat.completions.create(model="orchard", max_tokens=MAX_TOKENS,
                                              messages=[asked]).choices[0].message.content
    assert answer([asked, {"role": "assistant", "content": withheld}, then], extra_body=words_only) == \
        answer([asked, then], extra_body=words_only)
