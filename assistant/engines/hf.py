"""transformers + peft engine: the base once in memory, LoRA adapters attached by name.

Precision: 4-bit NF4 through bitsandbytes with quant="4bit" (the default on CUDA); otherwise bf16
where the CPU has native bf16 (AVX512-BF16 or AMX), else fp32. Adapters are loaded once into one
PeftModel and chosen per request with `set_adapter`; the bare base runs under `disable_adapter()`.
Requests are serialised by a lock: the active adapter is model-wide state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

from assistant.engines import EngineError, GenerationSettings
from assistant.engines.handoff import threaded_stream
from assistant.prompts import get_format

QUANT_CHOICES = ("auto", "4bit", "bf16", "fp32")


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(quant: str, cuda: bool) -> str:
    if quant not in QUANT_CHOICES:
        raise EngineError(f"unknown --quant '{quant}' (choose from: {', '.join(QUANT_CHOICES)})")
    if quant != "auto":
        return quant
    if cuda:
        return "4bit"
    return "bf16" if cpu_has_bf16() else "fp32"


def load_base_model(hf_dir: Path, precision: str, device: str):
    """The base model at the chosen precision (shared with training)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {}
    if precision == "4bit":
        compute = torch.bfloat16 if device == "cuda" or cpu_has_bf16() else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
        kwargs["device_map"] = {"": device}
    else:
        kwargs["dtype"] = torch.bfloat16 if precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs)
    if precision != "4bit":
        model.to(device)
    model.eval()
    return model


class HFEngine:
    name = "hf"

    def __init__(self, hf_dir: Path, prompt_format: str = "qa", quant: str = "auto", device: str | None = None):
        import torch
        from transformers import AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = choose_precision(quant, self.device == "cuda")
        self.prompt_format = get_format(prompt_format)
        self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        self.model = load_base_model(Path(hf_dir), self.precision, self.device)
        self.peft = None  # a PeftModel around self.model once the first adapter is loaded
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    # adapters -------------------------------------------------------------------------------
    def load_adapter(self, adapter) -> None:
        with self._lock:
            self._load_locked(adapter)

    def _load_locked(self, adapter) -> None:
        if adapter.key in self._loaded:
            return
        from peft import PeftModel

        try:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, str(adapter.path), adapter_name=adapter.key)
                self.peft.eval()
            else:
                self.peft.load_adapter(str(adapter.path), adapter_name=adapter.key)
        except Exception as exc:
            raise EngineError(f"adapter '{adapter.name}' could not be loaded: {exc}") from exc
        self._loaded.add(adapter.key)

    def unload_adapter(self, key: str) -> None:
        with self._lock:
            if key in self._loaded and self.peft is not None:
                self.peft.delete_adapter(key)
                self._loaded.discard(key)
                if self._loaded:  # peft keeps pointing at the deleted adapter otherwise
                    self.peft.set_adapter(sorted(self._loaded)[0])
                else:
                    self.model = self.peft.unload()  # back to the plain base, no LoRA layers left
                    self.peft = None

    # generation -----------------------------------------------------------------------------
    def tokenize(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=True)["input_ids"]

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def generate_ids(self, prompt_ids: list[int], adapter, settings: GenerationSettings) -> Iterator[int]:
        """Token ids one at a time, with a KV cache; greedy when temperature is 0.

        The decode runs in its own thread (engines.handoff), so a reader that stops reading never
        keeps the engine's lock: the decode ends at the next token and lets the lock go.
        """
        ids = list(prompt_ids)
        if not ids:
            raise EngineError("an empty prompt has nothing to continue")

        def produce(emit, cancelled) -> None:
            while not self._lock.acquire(timeout=0.1):  # wait our turn, leaving if the reader left
                if cancelled.is_set():
                    return
            try:
                self._decode(ids, adapter, settings, emit, cancelled)
            finally:
                self._lock.release()

        return threaded_stream(produce)

    def _decode(self, ids: list[int], adapter, settings: GenerationSettings, emit, cancelled) -> None:
        import torch

        inputs = torch.tensor([ids], device=self.device)
        generator = torch.Generator(device="cpu").manual_seed(settings.seed)
        # no_grad, not inference_mode: adapters loaded in here must stay usable by set_adapter later.
        with torch.no_grad(), self._adapter_context(adapter):
            model = self.peft if self.peft is not None else self.model
            past = None
            for _ in range(settings.max_tokens):
                if cancelled.is_set():
                    return
                out = model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = pick_token(out.logits[0, -1].float().cpu(), settings, generator)
                emit(token)
                inputs = torch.tensor([[token]], device=self.device)

    def _adapter_context(self, adapter):
        if adapter is None:
            return self.peft.disable_adapter() if self.peft is not None else nullcontext()
        self._load_locked(adapter)
        self.peft.set_adapter(adapter.key)
        return nullcontext()


def pick_token(logits, settings: GenerationSettings, generator) -> int:
    """Greedy at temperature 0; else temperature, top-k and top-p sampling."""
    import torch

    if settings.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / settings.temperature
    if settings.top_k > 0:
        kth = torch.topk(logits, min(settings.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < settings.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
