"""The text an export carries besides its weights: the chat templates and the Ollama Modelfile.

The Jinja templates (what llama.cpp and transformers read) and the Go templates (what Ollama reads)
render exactly what assistant.prompts renders for the same conversation, for each prompt format;
tests render both and compare.
"""

from __future__ import annotations

from assistant.prompts import get_format

# Chat templates (Jinja, as llama.cpp and transformers read them), rendering exactly what
# assistant.prompts renders for the same conversation (tests check this).
CHAT_TEMPLATES = {
    "qa": ("{{ bos_token }}{% for message in messages %}"
           "{% if message['role'] == 'user' %}Question: {{ message['content'] | trim }}\nAnswer:"
           "{% elif message['role'] == 'assistant' %} {{ message['content'] | trim }}\n\n{% endif %}"
           "{% endfor %}"),
    "gemma-chat": ("{{ bos_token }}{% for message in messages %}"
                   "{% if message['role'] == 'user' %}<start_of_turn>user\n{{ message['content'] | trim }}<end_of_turn>\n"
                   "{% elif message['role'] == 'assistant' %}<start_of_turn>model\n{{ message['content'] | trim }}"
                   "<end_of_turn>\n{% endif %}{% endfor %}"
                   "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
}
# The same layouts as Ollama (Go) templates, and the stops Ollama needs to end an answer.
OLLAMA_TEMPLATES = {
    "qa": ('{{- range .Messages }}{{- if eq .Role "user" }}Question: {{ .Content }}\nAnswer:'
           '{{- else if eq .Role "assistant" }} {{ .Content }}\n\n{{ end }}{{- end }}'),
    "gemma-chat": ('{{- range .Messages }}{{- if eq .Role "user" }}<start_of_turn>user\n{{ .Content }}<end_of_turn>\n'
                   '{{- else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n'
                   '{{ end }}{{- end }}<start_of_turn>model\n'),
}
OLLAMA_STOPS = {"qa": ("Question:", "<eos>"), "gemma-chat": ("<end_of_turn>", "<eos>")}


def modelfile_text(fmt: str, prompt_format: str, files: list[str], base) -> str:
    """An Ollama Modelfile: FROM the model (or the base GGUF + ADAPTER), the template, the stops."""
    get_format(prompt_format)  # an unknown format fails here, not in Ollama
    lines = [f"# Ollama: ollama create <name> -f Modelfile   (prompt format: {prompt_format})"]
    if fmt == "lora-gguf":
        base_ref = f"./{files[1]}" if len(files) > 1 else str(base.gguf_path)
        lines += [f"FROM {base_ref}", f"ADAPTER ./{files[0]}"]
    elif fmt == "hf":
        lines.append("FROM .")
    else:
        lines.append(f"FROM ./{files[0]}")
    lines.append(f'TEMPLATE """{OLLAMA_TEMPLATES[prompt_format]}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in OLLAMA_STOPS[prompt_format]]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
