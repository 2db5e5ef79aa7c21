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


def new_batch(n_tokens: int, n_seq: int = 1):
    from llama_cpp._internals import LlamaBatch

    return LlamaBatch(n_tokens=n_tokens, embd=0, n_seq_max=n_seq, verbose=False)


def fill_batch(batch, runs: list[tuple[int, int, list[int]]], every_logit: bool) -> None:
    """Fill `batch` (from new_batch) with runs of (sequence, position of its first token, tokens):
    each token belongs to one sequence; logits for every token, or for each run's last only."""
    raw = batch.batch
    i = 0
    for seq, start, tokens in runs:
        for offset, token in enumerate(tokens):
            raw.token[i] = token
            raw.pos[i] = start + offset
            raw.seq_id[i][0] = seq
            raw.n_seq_id[i] = 1
            raw.logits[i] = every_logit or offset == len(tokens) - 1
            i += 1
    raw.n_tokens = i


def load_model_without_repack():
    """A context manager: `llama_cpp.Llama` models created inside it keep their weights as stored.

    ggml's CPU backend by default repacks some quantised weights into interleaved "extra" buffers for
    its gemm kernels, which it uses from 4 rows of a batch up and gemv below: a row's logits then
    depend on how many rows share its batch, and a greedy answer on who else is decoding. Without
    the repack a row's logits were bit-identical alone and in batches of up to 7 rows here, and
    decoding alone was as fast (88-91 vs 83-87 tok/s, measured). `Llama` has no argument for it, so
    its default model parameters are patched while it loads.
    """
    import contextlib

    import llama_cpp.llama_cpp as raw

    @contextlib.contextmanager
    def patched():
        default = raw.llama_model_default_params

        def without_repack():
            params = default()
            params.use_extra_bufts = False
            return params

        raw.llama_model_default_params = without_repack
        try:
            yield
        finally:
            raw.llama_model_default_params = default

    return patched()


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
