"""The private llama-cpp-python APIs the engine needs, in one place, checked against the pinned version.

The public `Llama` class owns one context; serving several chats at once needs several contexts
over one loaded model, each with its own batch and sampler. llama-cpp-python builds those from
`llama_cpp._internals` (LlamaContext, LlamaBatch, LlamaSampler) over the `Llama` object's private
`_model`. Private APIs change without notice between releases, so nothing else imports them, and
this module refuses any version but the one the Makefile pins and the tests ran on.
"""

from __future__ import annotations

from assistant.engines import EngineError

PINNED_VERSION = "0.3.36"  # the Makefile's LLAMA; change both together, and rerun tests/test_engines.py


def check_version(installed: str | None = None) -> None:
    """Raise EngineError unless the installed llama-cpp-python is the pinned one."""
    if installed is None:
        import llama_cpp

        installed = getattr(llama_cpp, "__version__", "unknown")
    if installed != PINNED_VERSION:
        raise EngineError(f"llama-cpp-python {installed} is installed, but this engine uses private parts of "
                          f"{PINNED_VERSION} (several contexts over one model); run `make setup` to install it")


def new_context(llm, params):
    """A context of its own (KV cache, adapter set) over the model that `llm` (a llama_cpp.Llama) loaded."""
    from llama_cpp._internals import LlamaContext

    return LlamaContext(model=llm._model, params=params, verbose=False)


def new_batch(n_tokens: int):
    from llama_cpp._internals import LlamaBatch

    return LlamaBatch(n_tokens=n_tokens, embd=0, n_seq_max=1, verbose=False)


def new_sampler(greedy: bool, top_k: int = 64, top_p: float = 0.95, temperature: float = 1.0, seed: int = 0):
    """A sampler chain: greedy, or top-k, then top-p, then temperature, then a seeded draw."""
    from llama_cpp._internals import LlamaSampler

    sampler = LlamaSampler()
    if greedy:
        sampler.add_greedy()
    else:
        sampler.add_top_k(top_k)
        sampler.add_top_p(top_p, 1)
        sampler.add_temp(temperature)
        sampler.add_dist(seed)
    return sampler
