"""Every GGUF read and write of the app, one idea per module.

    reader.py     the key-values of a GGUF file: metadata (arrays skipped) and the tokenizer keys
    names.py      HF weight names -> llama.cpp tensor names (gguf's own Gemma 3 map)
    tokenizer.py  tokenizer.* keys for a new GGUF: from a base GGUF, or rebuilt from an HF tokenizer
    model.py      a complete Gemma 3 model GGUF, streamed one tensor at a time
    lora.py       a peft LoRA -> a llama.cpp LoRA adapter GGUF
    quantize.py   llama.cpp's own quantizer on an f16 GGUF
    to_hf.py      a GGUF base -> an fp32 Hugging Face directory (transformers dequantizes)

This package shadows nothing: inside it `import gguf` is still the `gguf` library (absolute imports).
"""


class GGUFReadError(ValueError):
    """The file is not a GGUF this reader understands (bad magic, version, truncated, a bad type)."""


class GGUFExportError(Exception):
    """The model or adapter cannot be written as a GGUF faithfully; the message says why."""
