"""The Gradio app: layout and wiring only; every handler lives in a small module beside this one."""

from __future__ import annotations

import functools
import os

import gradio as gr

from ui import chat

TITLE = "Field assistant"


def build(assistant) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"## {TITLE}\nChat with the base model or a specialised adapter. "
                    f"<sub>Base: {assistant.base.name} · engine: {assistant.engine.name}</sub>")
        with gr.Tab("Chat", id="chat"):
            _chat_tab(assistant)
    return demo


def _chat_tab(assistant) -> None:
    with gr.Row(equal_height=True):
        adapter = gr.Dropdown(choices=chat.adapter_choices(assistant), value=chat.NONE_VALUE, scale=4,
                              label="Adapter for this chat", elem_id="adapter-select", interactive=True)
        refresh = gr.Button("↻ Refresh list", scale=1, elem_id="refresh-adapters")
    card = gr.Markdown(chat.adapter_card(assistant, chat.NONE_VALUE), elem_id="adapter-card")
    broken = gr.Markdown(chat.unusable_note(assistant), elem_id="adapter-problems")
    chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=420, buttons=["copy"],
                         placeholder="Ask a question about your crops, soil, pests…")
    conversation = gr.State([])
    with gr.Row():
        box = gr.Textbox(placeholder="Type a question and press Enter", show_label=False, scale=5,
                         elem_id="question", autofocus=True)
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
    with gr.Accordion("Settings", open=False):
        max_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max new tokens")
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = always the same answer)")
    clear = gr.Button("Clear chat", elem_id="clear")

    respond = functools.partial(chat.respond, assistant)
    inputs = [box, chatbot, conversation, adapter, max_tokens, temperature]
    outputs = [chatbot, conversation, box]
    box.submit(respond, inputs, outputs, concurrency_limit=8)
    send.click(respond, inputs, outputs, concurrency_limit=8)
    clear.click(chat.clear, None, outputs)

    def refreshed(current):
        choices = chat.adapter_choices(assistant)
        value = current if current in {v for _, v in choices} else chat.NONE_VALUE
        return gr.Dropdown(choices=choices, value=value), chat.adapter_card(assistant, value), chat.unusable_note(assistant)

    refresh.click(refreshed, adapter, [adapter, card, broken])
    adapter.change(functools.partial(chat.adapter_card, assistant), adapter, card)
    adapter.focus(refreshed, adapter, [adapter, card, broken])


def serve(assistant, host: str = "127.0.0.1", port: int = 7860) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build(assistant)
    demo.queue(default_concurrency_limit=8)
    print(f"Serving on http://{host}:{port}  (base: {assistant.base.name}; engine: {assistant.engine.name})", flush=True)
    demo.launch(server_name=host, server_port=port, show_error=False, footer_links=["api"],
                blocked_paths=[str(assistant.registry.data_dir)])
