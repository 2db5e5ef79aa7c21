"""The Gradio app: layout and wiring only; every handler lives in a small module beside this one."""

from __future__ import annotations

import functools
import os

import gradio as gr

from assistant.auth import Access
from ui import chat, chats, fairness, gate, tempfiles
from ui import export as exporting
from ui import questions as questions_section
from ui import train as training
from ui import versions as versions_section
from ui.access import FARMER, TRAINER, guard, username
from ui.clients import Clients

TITLE = "Field assistant"
QUEUE_SIZE = 64  # requests waiting beyond this are turned away with "the queue is full", not left hanging
DELETE_CACHE = (3600, 6 * 3600)  # hourly, Gradio deletes its temp files (uploads, downloads) older than 6 h


def build(assistant, jobs=None, access: Access | None = None, max_upload_mb: int = 20) -> gr.Blocks:
    """The app. `access` decides who may do what (every handler checks it on the server); without
    one, as on a single machine with no users file, everyone may do everything."""
    access = access or Access(None)
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"## {TITLE}\nChat with the base model or a specialised adapter. "
                    f"<sub>Base: {assistant.base.name} · engine: {assistant.engine.name}</sub>")
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                adapter, card, broken = _chat_tab(assistant, access, demo)
            trainer_tabs = []
            if jobs is not None:
                with gr.Tab("Train", id="train", visible=not access.enabled) as train_tab:
                    _train_tab(assistant, jobs, demo, tabs, adapter, card, broken, access, max_upload_mb)
                trainer_tabs.append(train_tab)
                with gr.Tab("Export", id="export", visible=not access.enabled) as export_tab:
                    _export_tab(assistant, jobs, access)
                trainer_tabs.append(export_tab)
        if access.enabled:  # farmers see only the chat (the handlers refuse them anyway); the tabs start hidden:
            # a load event cannot hide a shown tab in Gradio 6.31 (measured: the button stays), but can show one
            def tabs_for(request: gr.Request):
                allowed = access.allows(username(request), TRAINER)
                return [gr.Tab(visible=allowed) for _ in trainer_tabs]

            demo.load(tabs_for, None, trainer_tabs)
    return demo


def _chat_tab(assistant, access, demo):
    with gr.Row(equal_height=True):
        adapter = gr.Dropdown(choices=chat.adapter_choices(assistant), value=chat.NONE_VALUE, scale=4,
                              label="Adapter for this chat", elem_id="adapter-select", interactive=True)
        refresh = gr.Button("↻ Refresh list", scale=1, elem_id="refresh-adapters")
    card = gr.Markdown(chat.adapter_card(assistant, chat.NONE_VALUE), elem_id="adapter-card")
    broken = gr.Markdown(chat.unusable_note(assistant), elem_id="adapter-problems")
    kept = chats.layout(assistant.store)  # past chats, kept in the database per user or per browser
    chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=420, buttons=["copy"],
                         placeholder="Ask a question about your crops, soil, pests…", feedback_options=("Like", "Dislike"))
    chats.feedback_layout(kept)  # "Suggest a correction" under the conversation
    conversation = gr.State([])
    suggested = gr.State([])  # the closest checked questions, when the last answer was not checked
    with gr.Row(elem_id="suggestions"):
        hint = gr.Markdown("**Did you mean…** (checked questions)", visible=False, elem_id="suggestions-hint")
        suggestions = [gr.Button("", visible=False, size="sm", elem_id=f"suggestion-{i}")
                       for i in range(chat.SUGGESTION_BUTTONS)]
    with gr.Row():
        box = gr.Textbox(placeholder="Opening your chats…", show_label=False, scale=5, elem_id="question",
                         autofocus=True, interactive=False)  # until the page has opened its chat (below)
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send", interactive=False)
    with gr.Row():
        ground = gr.Checkbox(False, label="Ground answers in the adapter's Q&A (shows the sources)",
                             elem_id="ground-toggle", scale=4)
        gr.Markdown(chat.knowledge_note(assistant), elem_id="knowledge-note")
    with gr.Accordion("Settings", open=False):
        max_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max new tokens")
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = always the same answer)")
    clear = gr.Button("New chat", elem_id="clear")

    respond = chats.responder(assistant, access)  # chat.respond, each answer kept in the session's chat
    inputs = [box, chatbot, conversation, adapter, max_tokens, temperature, ground, kept.owner, kept.chat, kept.ids]
    outputs = [chatbot, conversation, box, suggested, kept.chat, kept.ids]
    listed = chats.listing_of(assistant, access)
    # One queue for every way of asking: as many answers stream at once as the engine has slots;
    # the rest wait in Gradio's queue, which shows each user their place in line.
    # Enter and Send are one event with trigger_mode "once": while a page's answer streams, a second
    # press asks nothing. As two events, a second press ran a second handler on the chatbot as the
    # page held it then (half an answer, with its cursor); when that handler ended after the
    # streaming one, the page kept the half answer, cursor and all, for good.
    slots = getattr(assistant.engine, "slots", 1)
    for asked in (gr.on([box.submit, send.click], respond, inputs, outputs, api_name="respond", trigger_mode="once",
                        concurrency_limit=slots, concurrency_id="chat"),
                  *(button.click(lambda q: q, button, box, queue=False).then(  # a click asks that checked question
                      respond, inputs, outputs, concurrency_limit=slots, concurrency_id="chat") for button in suggestions)):
        asked.then(listed, [kept.owner, kept.chat], [kept.listing, kept.suggest], queue=False)
    suggested.change(chat.suggestion_buttons, suggested, [hint, *suggestions], queue=False)
    for emptied in (clear.click, chatbot.clear):  # the chatbot's own 🗑 starts a new chat too
        emptied(chats.new_chat, None, [*outputs[:4], kept.chat, kept.ids, kept.listing, kept.correction_row, kept.note,
                                       kept.suggest], queue=False)
    opened = chats.wire(assistant, access, demo, kept, chatbot, conversation, suggested)
    # Asking waits until the page has opened its chat: a question sent before (a slow link, a loaded
    # machine) had no owner yet, so its answer was kept nowhere, and the chat opened after it
    # replaced it on the page.
    opened.then(lambda: (gr.Textbox(interactive=True, placeholder="Type a question and press Enter"),
                         gr.Button(interactive=True)), None, [box, send], queue=False)
    # The engine's own view (slots free and busy, requests waiting), for operators and the stress
    # tests: after any storm of requests, abandoned ones included, every slot must come back.
    def status(request: gr.Request) -> dict:
        if message := access.denial(username(request), FARMER, "see the engine's status"):
            raise gr.Error(message, print_exception=False)
        return engine_status(assistant)

    gr.api(status, api_name="engine_status")

    refreshed = guard(access, FARMER, "list adapters", functools.partial(_refreshed, assistant))
    refresh.click(refreshed, adapter, [adapter, card, broken])
    adapter.change(guard(access, FARMER, "read adapter cards", functools.partial(chat.adapter_card, assistant)),
                   adapter, card)
    # Opening the list refreshes its choices only. It must not touch the value or the card: the
    # user picks an option right after the list opens, and a late reply carrying the value from
    # before the pick would silently switch the chat back (the two-pages browser test caught this).
    listed = guard(access, FARMER, "list adapters", functools.partial(_relisted, assistant))
    adapter.focus(listed, None, [adapter, broken])
    return adapter, card, broken


def engine_status(assistant) -> dict:
    """Slots in all, free and busy, and requests waiting for one (engines without slots: {})."""
    stats = getattr(assistant.engine, "stats", None)
    return stats() if stats is not None else {}


def _relisted(assistant):
    """The adapter list as it is now (an adapter published meanwhile appears); the choice is kept."""
    assistant.sync_knowledge()
    return gr.Dropdown(choices=chat.adapter_choices(assistant)), chat.unusable_note(assistant)


def _refreshed(assistant, wanted):
    """New adapter choices (an adapter published meanwhile appears), keeping or setting the choice."""
    assistant.sync_knowledge()  # the app owns the index: a version published meanwhile is indexed now
    choices = chat.adapter_choices(assistant)
    value = wanted if wanted in {v for _, v in choices} else chat.NONE_VALUE
    return gr.Dropdown(choices=choices, value=value), chat.adapter_card(assistant, value), chat.unusable_note(assistant)


def _train_tab(assistant, jobs, demo, tabs, chat_adapter, chat_card, chat_broken, access, max_upload_mb=20) -> None:
    gr.Markdown("Teach the model your own facts from a question–answer file. Training runs in the background; "
                "chats keep working meanwhile.")
    with gr.Row():
        upload = gr.File(label="Q&A file (CSV, Excel, JSON Lines, JSON)", file_types=[".csv", ".tsv", ".txt", ".xlsx",
                         ".jsonl", ".json"], type="filepath", elem_id="train-upload")
        with gr.Column():
            name = gr.Textbox(label="Adapter name", placeholder="e.g. maize-kenya", elem_id="train-name")
            policy = gr.Radio(training.POLICY_CHOICES, value="open", label="How it answers", elem_id="train-policy",
                              info=training.POLICY_INFO)
            preset = gr.Radio(training.preset_choices(), value="fast", label="Recipe", elem_id="train-preset")
            description = gr.Textbox(label="Description (shown on the chat card)", lines=1)
    report = gr.Markdown(training.validate_upload(None)[0], elem_id="train-report")
    validated = gr.State(None)
    with gr.Accordion("Advanced settings", open=False):
        with gr.Row():
            fast = training.FAST  # the defaults shown are the fast preset's own
            rank = gr.Slider(4, 64, value=fast.rank, step=4, label="LoRA rank (alpha = 2 × rank)")
            lr = gr.Number(value=fast.learning_rate, label="Learning rate", minimum=1e-6, maximum=0.1)
            epochs = gr.Slider(1, 200, value=fast.epochs, step=1, label="Epochs at most (stops early once learnt)")
            replay = gr.Slider(0, 64, value=fast.replay_per_step, step=1, label="General questions replayed per step")
        grounded = gr.Checkbox(False, label=training.GROUNDED_LABEL, elem_id="train-grounded")
        wordings = gr.Checkbox(bool(fast.augment), label=training.WORDINGS_LABEL, elem_id="train-wordings")
        allow_conflicts = gr.Checkbox(False, label="Train even if a question has conflicting answers")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        stop = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
    status = gr.Markdown(elem_id="train-status")
    progress = gr.HTML(elem_id="train-progress-box")
    plot = gr.LinePlot(training.loss_frame(None), x="step", y="loss", title="Training loss", height=220)
    card = gr.Markdown(elem_id="train-card")
    published = gr.State("")
    open_chat = gr.Button("Chat with the new adapter", visible=False, elem_id="train-open-chat")

    with gr.Accordion("How an adapter answers (no retraining)", open=False):
        with gr.Row():
            policy_of = gr.Dropdown(choices=training.policy_choices(assistant), value=None, label="Adapter",
                                    elem_id="policy-adapter", interactive=True)
            new_policy = gr.Radio(training.POLICY_CHOICES, value="checked", label="How it answers",
                                  elem_id="policy-choice")
            set_policy = gr.Button("Set", elem_id="policy-set")
        policy_status = gr.Markdown(elem_id="policy-status")

    with gr.Accordion("Delete an adapter", open=False):
        with gr.Row():
            doomed = gr.Dropdown(choices=training.deletable(assistant), value=None, label="Trained adapter",
                                 elem_id="delete-adapter", interactive=True)
            sure = gr.Checkbox(False, label="Yes, delete every version of it")
            delete = gr.Button("Delete", variant="stop", elem_id="delete-start")
        deleted = gr.Markdown(elem_id="delete-status")

    def trainer(action, fn):
        return guard(access, TRAINER, action, fn)

    # Read (and linted) in a child process under limits, with the same size cap as the upload itself.
    upload.change(trainer("upload training data", functools.partial(
        training.check_upload, assistant=assistant, max_bytes=int(max_upload_mb) * 2**20)), upload, [report, validated, name])
    watch = trainer("watch training", functools.partial(training.watch, jobs))
    start.click(trainer("train adapters", functools.partial(training.start, jobs, assistant.registry.data_dir / "uploads")),
                [validated, name, preset, description, rank, lr, epochs, replay, allow_conflicts, grounded, policy,
                 wordings],
                status
                ).then(watch, None, [progress, plot, card, published])
    stop.click(trainer("cancel training", functools.partial(training.cancel, jobs)), None, status)
    delete.click(trainer("delete adapters", functools.partial(training.delete, assistant)), [doomed, sure],
                 [deleted, doomed])
    # A new version answers as the one it replaces unless the trainer changes it here.
    name.change(trainer("train adapters", functools.partial(training.policy_for_name, assistant)), name, policy,
                queue=False)
    policy.change(trainer("train adapters", training.grounded_for_policy), policy, grounded,
                  queue=False)  # also when a typed name sets the policy
    set_policy.click(trainer("set answer policies", functools.partial(training.set_policy, assistant)),
                     [policy_of, new_policy], policy_status)
    # Opening a list refreshes its choices only, never its value (a late reply could undo a pick).
    policy_of.focus(trainer("set answer policies", lambda: gr.Dropdown(choices=training.policy_choices(assistant))),
                    None, policy_of)
    doomed.focus(trainer("delete adapters", lambda: gr.Dropdown(choices=training.deletable(assistant))), None, doomed)

    def watch_on_load(request: gr.Request):  # a reload finds the running job; farmers get nothing
        if access.allows(username(request), TRAINER):
            yield from training.watch(jobs)
        else:
            yield "", training.loss_frame(None), "", ""

    demo.load(watch_on_load, None, [progress, plot, card, published])
    published.change(lambda n: gr.Button(visible=bool(n), value=f"Chat with {n}" if n else ""), published, open_chat)
    open_chat.click(lambda: gr.Tabs(selected="chat"), None, tabs).then(
        functools.partial(_refreshed, assistant), published, [chat_adapter, chat_card, chat_broken])
    versions_section.mount(assistant, jobs, access)  # ui.versions: which version serves, the next version
    if assistant.store is not None:
        questions_section.build(assistant, access, demo)  # ui.questions: the trainers' queue


def _export_tab(assistant, jobs, access) -> None:
    gr.Markdown("Export an adapter for llama.cpp, Ollama or transformers. Each export is checked against the "
                "adapter itself (its training and held-out questions) before it is offered.")
    with gr.Row():
        adapter = gr.Dropdown(choices=exporting.adapter_choices(assistant), value=None, label="Adapter",
                              elem_id="export-adapter", interactive=True)
        fmt = gr.Radio(exporting.FORMAT_CHOICES, value="gguf-q4_k_m", label="Format", elem_id="export-format")
    start = gr.Button("Export", variant="primary", elem_id="export-start")
    progress = gr.HTML(elem_id="export-progress-box")
    table = gr.Markdown(elem_id="export-verification")
    files = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="export-files")
    modelfile = gr.Code(label="Modelfile (Ollama)", language=None, interactive=False, elem_id="export-modelfile")
    start.click(guard(access, TRAINER, "export adapters", functools.partial(exporting.run, assistant, jobs)),
                [adapter, fmt], [progress, table, files, modelfile])
    # Opening the list refreshes its choices only, never its value: a late reply carrying the value
    # from before the pick undid it ("Choose an adapter first.", a CI run of the export browser test).
    adapter.focus(guard(access, TRAINER, "export adapters",
                        lambda: gr.Dropdown(choices=exporting.adapter_choices(assistant))), None, adapter)


def queued(demo: gr.Blocks) -> gr.Blocks:
    """The app's queue as `serve` runs it (tests that launch the app in-process use it too)."""
    # api_open=False: Gradio's direct /run/... route would skip the queue, its slots and the per-user limit.
    return demo.queue(default_concurrency_limit=8, max_size=QUEUE_SIZE, api_open=False)


def serve(assistant, host: str = "127.0.0.1", port: int = 7860, base_spec: str | None = None, users=None,
          max_upload_mb: int = 20, trusted_proxies=()) -> None:
    from starlette.middleware import Middleware

    from api.app import Dispatch, create_api
    from assistant.jobs import JobManager

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    tempfiles.use_private_dir()  # before any component exists: each one reads Gradio's temp dir once
    assistant.open_knowledge(owner=True)  # this process owns the Q&A index for its whole life
    # Jobs train and score in a process of their own, in-process: a server engine serves chats only.
    job_engine = assistant.engine.name if assistant.engine.name in ("llamacpp", "hf") else "llamacpp"
    jobs = JobManager(base_spec, assistant.registry.data_dir, engine=job_engine,
                      on_busy=getattr(assistant.engine, "yield_cores", None), max_file_mb=max_upload_mb)
    access, clients = Access(users), Clients(trusted_proxies)
    demo = queued(build(assistant, jobs, access, max_upload_mb))
    fairness.limit_per_user(demo, "chat", clients)
    # api.app.Dispatch first: /v1/... (the OpenAI-compatible API, same port) never reaches the Gate or Gradio.
    middleware = [Middleware(Dispatch, api=create_api(assistant, access, clients)),
                  Middleware(gate.Gate, access=access, clients=clients, max_upload_bytes=int(max_upload_mb) * 2 ** 20,
                             trainer_dirs=[assistant.registry.data_dir])]
    print(f"Serving on http://{host}:{port}  (base: {assistant.base.name}; engine: {assistant.engine.name}; "
          f"OpenAI-compatible API at http://{host}:{port}/v1)", flush=True)
    auth = None
    if users is not None:
        auth = gate.login_callback(users)
        print(f"Log-in required: {len(users.users)} users from {users.path}", flush=True)
    _interrupt_on_sigterm(jobs)
    try:
        demo.launch(server_name=host, server_port=port, show_error=False, footer_links=["api"], auth=auth,
                    auth_message="Field assistant: log in with the name and password your coordinator gave you.",
                    max_file_size=f"{int(max_upload_mb)}mb",
                    blocked_paths=exporting.blocked_paths(assistant.registry.data_dir),  # all of it: see ui.export
                    app_kwargs={"middleware": middleware})  # ui.gate: uploads, log-in waits, the log-in page
    finally:  # a service manager's stop: the app's own jobs stop with it, nothing is left running
        jobs.shutdown()
        assistant.close()


def _interrupt_on_sigterm(jobs) -> None:
    """SIGTERM (a service manager's stop) ends the app as Ctrl-C does: Gradio's main-thread wait
    catches KeyboardInterrupt and closes the server (5 s at most), then `serve` stops the engine.
    The jobs are told first, so their own grace period runs while the server closes."""
    import signal
    import threading

    def interrupt(*_):
        threading.Thread(target=jobs.shutdown, name="stop-jobs", daemon=True).start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
