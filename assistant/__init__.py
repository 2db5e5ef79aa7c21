"""Chat assistant on a Gemma 3 base with hot-swappable LoRA adapters.

The public surface is small: `Assistant` (assistant.service) owns the base, the adapter registry and
one engine; the CLI and the Gradio UI are thin layers over it.
"""

__version__ = "0.1.0"
