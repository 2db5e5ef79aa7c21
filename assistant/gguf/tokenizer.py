"""tokenizer.* keys for a new GGUF: copied from the base GGUF, or rebuilt from an HF tokenizer.

The keys are (key, value, GGUFValueType, sub_type) tuples, GGUFWriter.add_key_value's arguments, so
a writer adds them as they are. The chat template is the one thing that is replaced: an export
carries the template of its adapter's prompt format, not the base's.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.gguf import GGUFExportError
from assistant.gguf.reader import read_tokenizer


def tokenizer_kv(base, chat_template: str | None = None) -> list[tuple]:
    """tokenizer.* GGUF keys as (key, value, type, sub_type): from the base GGUF when there is one,
    else from the HF tokenizer; `chat_template` replaces the base's template."""
    import gguf

    if base.gguf_path is not None:
        items = read_tokenizer(base.gguf_path)
    else:
        items = hf_tokenizer_kv(base.ensure_hf_dir(progress=False))
    items = [item for item in items if item[0] != "tokenizer.chat_template"]
    if chat_template:
        items.append(("tokenizer.chat_template", chat_template, gguf.GGUFValueType.STRING, None))
    return items


def hf_tokenizer_kv(hf_dir: Path) -> list[tuple]:
    """GGUF tokenizer keys for a Gemma 3 HF directory.

    With `tokenizer.model` (how Gemma 3 checkpoints ship) gguf's SentencePieceVocab reads the exact
    pieces and scores. With only `tokenizer.json` (a BPE form of the same SentencePiece model), the
    scores are rebuilt from the merge ranks: llama.cpp's SPM tokenizer merges the adjacent pair whose
    joined piece scores highest, which is the lowest-ranked merge. The export's verification
    compares token ids with transformers, so a tokenizer that disagreed would be caught.
    """
    import gguf

    T = gguf.GGUFValueType
    hf_dir = Path(hf_dir)
    if (hf_dir / "tokenizer.model").is_file():
        vocab = gguf.vocab.SentencePieceVocab(hf_dir)
        tokens, scores, types = zip(*vocab.all_tokens(), strict=True)
        tokens = [t.decode("utf-8", errors="surrogateescape") if isinstance(t, bytes) else t for t in tokens]
    else:
        data = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
        model = data["model"]
        if model.get("type") != "BPE":
            raise GGUFExportError(f"cannot write a llama.cpp tokenizer from {hf_dir} (no tokenizer.model, "
                              f"and tokenizer.json is {model.get('type')}, not BPE)")
        size = max(model["vocab"].values()) + 1
        tokens = [""] * size
        for piece, idx in model["vocab"].items():
            tokens[idx] = piece
        added = {a["id"]: a for a in data.get("added_tokens", [])}
        for idx, token in added.items():  # llama.cpp keeps added tokens as written
            tokens[idx] = token["content"]
        # Gemma's runs of spaces are user-defined pieces in SentencePiece; tokenizer.json has them as
        # ordinary "▁▁…" entries, the GGUF as spaces.
        spaces = {idx for idx, piece in enumerate(tokens) if len(piece) > 1 and set(piece) == {"▁"}}
        for idx in spaces:
            tokens[idx] = " " * len(tokens[idx])
        rank: dict[str, int] = {}
        for i, merge in enumerate(model.get("merges", [])):
            left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
            rank.setdefault(left + right, i)
        floor = -float(len(rank) + 1)
        scores, types = [], []
        for idx, piece in enumerate(tokens):
            if idx in added or idx in spaces:
                scores.append(-1000.0)
                special = idx in added and added[idx].get("special")
                types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                scores.append(0.0)
                types.append(gguf.TokenType.BYTE)
            else:
                scores.append(-float(rank[piece]) if piece in rank else floor)
                types.append(gguf.TokenType.NORMAL)
    special = gguf.vocab.SpecialVocab(hf_dir, load_merges=False, n_vocab=len(tokens))
    items = [("tokenizer.ggml.model", "llama", T.STRING, None), ("tokenizer.ggml.pre", "default", T.STRING, None),
             ("tokenizer.ggml.tokens", list(tokens), T.ARRAY, T.STRING),
             ("tokenizer.ggml.scores", [float(s) for s in scores], T.ARRAY, T.FLOAT32),
             ("tokenizer.ggml.token_type", [int(t) for t in types], T.ARRAY, T.INT32)]
    ids = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "pad": "padding_token_id"}
    for kind, key in ids.items():
        if kind in special.special_token_ids:
            items.append((f"tokenizer.ggml.{key}", int(special.special_token_ids[kind]), T.UINT32, None))
    add = {"bos": True, "eos": False} | {k: bool(v) for k, v in special.add_special_token.items() if k in ("bos", "eos")}
    items += [("tokenizer.ggml.add_bos_token", add["bos"], T.BOOL, None),
              ("tokenizer.ggml.add_eos_token", add["eos"], T.BOOL, None),
              ("tokenizer.ggml.add_space_prefix", False, T.BOOL, None)]
    return items
