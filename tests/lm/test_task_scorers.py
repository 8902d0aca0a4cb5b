"""LLM task files scored with known answers: a tiny Llama wired as a bigram table (after token a
comes b, by a wide margin), so which choice wins and what greedy generation says are known."""

from __future__ import annotations

import json

import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.lm.scorers import task_file
from modelpress.lm.scoring import encode_pair, loglikelihoods
from modelpress.tasks.llm_tasks import items, score_tasks

from .conftest import tiny_llama, word_tokenizer


def wid(word: str) -> int:
    return 0 if word == "<eos>" else int(word[1:]) + 2  # conftest's WordLevel vocabulary


def bigram_llama(follows: dict[str, str], seed: int = 0) -> torch.nn.Module:
    """Blocks that add nothing (o_proj and down_proj zeroed: the residual stream is the token's
    embedding), and an LM head whose row b is the normalised embedding of a for each a → b:
    logit(b | a) = hidden size (64) while every other logit stays near 0."""
    model = tiny_llama(seed=seed)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.model.embed_tokens.weight
        for a, b in follows.items():
            row = embed[wid(a)]
            model.lm_head.weight[wid(b)] = row / row.pow(2).mean().sqrt()
    return model.eval()


CHAIN = {"w1": "w2", "w2": "w3", "w3": "w7", "w7": "<eos>"}


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer()


@pytest.fixture(scope="module")
def model():
    return bigram_llama(CHAIN)


def write_jsonl(path, records) -> str:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def test_the_continuation_is_the_whole_beyond_the_context(tokenizer):
    assert encode_pair(tokenizer, "w1 w2", " w3 w4") == ([wid("w1"), wid("w2")], [wid("w3"), wid("w4")])
    assert encode_pair(tokenizer, "w1 w2 ", "w3") == ([wid("w1"), wid("w2")], [wid("w3")])  # trailing space moves
    assert encode_pair(tokenizer, "", "w5") == ([0], [wid("w5")])  # no context: EOS


def test_loglikelihood_is_the_sum_over_the_continuation_whatever_the_batch(model, tokenizer):
    pairs = [("w1 w2 w3", " w7"), ("w1", " w2 w3 w7"), ("w9", " w4 w5"), ("w1 w2", " w9")]
    batched = loglikelihoods(model, tokenizer, pairs, max_tokens=64, batch_size=4)
    single = loglikelihoods(model, tokenizer, pairs, max_tokens=64, batch_size=1)
    assert batched == pytest.approx(single, abs=1e-4)  # right padding changes nothing
    with torch.no_grad():  # by hand: one forward of context + continuation, unpadded
        ids = torch.tensor([[wid("w1"), wid("w2"), wid("w3"), wid("w7")]])
        log_p = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        by_hand = float(log_p[0, wid("w2")] + log_p[1, wid("w3")] + log_p[2, wid("w7")])
    assert batched[1] == pytest.approx(by_hand, abs=1e-4)
    assert batched[0] > -0.01 and batched[1] > -0.01  # the bigram chain: near-certain
    assert batched[3] < -30  # w9 after w2: against a margin of 64 nats


def test_multiple_choice_picks_the_likely_choice(model, tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"context": "w1 w2 w3", "choices": ["w5", "w7", "w9"], "gold": 1},  # w7 follows w3: right
        {"query": "w1 w2 w3", "choices": ["w5", "w7"], "gold": 0},  # gold is not the likely one: wrong
        {"context": "w1", "choices": ["w4 w5 w6", "w2 w3"], "gold": "w2 w3"},  # gold by its text
    ])
    task = task_file({"name": "mc", "kind": "multiple-choice", "path": path})
    scores = task.score(model, tokenizer, items(task), max_tokens=64)
    assert scores == {"acc": [1.0, 0.0, 1.0], "acc_norm": [1.0, 0.0, 1.0]}


def test_acc_norm_divides_by_the_choice_length(tokenizer, tmp_path):
    # a chain w1 → w2 → ... → w12; the long choice follows it for ten tokens, then leaves it
    # twice (w40, w41): summed, it is below the short unlikely w90; per character, far above
    model = bigram_llama({f"w{i}": f"w{i + 1}" for i in range(1, 12)})
    long = " ".join(f"w{i}" for i in range(2, 12)) + " w40 w41"
    path = write_jsonl(tmp_path / "mc.jsonl", [{"context": "w1", "choices": ["w90", long], "gold": 1}])
    task = task_file({"name": "mc", "kind": "multiple-choice", "path": path})
    lls = loglikelihoods(model, tokenizer, [("w1", " w90"), ("w1", " " + long)], max_tokens=64)
    assert lls[1] < lls[0] and lls[1] / len(long) > lls[0] / 3
    assert task.score(model, tokenizer, items(task), max_tokens=64) == {"acc": [0.0], "acc_norm": [1.0]}


def test_exact_match_generates_greedily_until_eos(model, tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "gen.jsonl", [
        {"prompt": "w1 w2 w3", "answer": "w7"},  # w3 → w7 → eos
        {"prompt": "w1", "answer": ["w9", "w2 w3 w7"]},  # w1 → w2 → w3 → w7 → eos; second answer
        {"prompt": "w2", "answer": "w7"},  # generates "w3 w7": wrong
    ])
    task = task_file({"name": "qa", "kind": "exact-match", "path": path})
    assert task.score(model, tokenizer, items(task), max_tokens=8) == {"exact_match": [1.0, 1.0, 0.0]}
    short = task_file({"name": "qa", "kind": "exact-match", "path": path, "max_tokens": 1})
    assert short.score(model, tokenizer, items(short), max_tokens=8)["exact_match"] == [1.0, 0.0, 0.0]


def test_both_models_scored_on_the_same_items_with_paired_samples(model, tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "mc.jsonl", [{"context": "w1 w2 w3", "choices": ["w5", "w7"], "gold": 1},
                                               {"context": "w1", "choices": ["w2", "w8"], "gold": 0}])
    worse = bigram_llama({"w3": "w5", "w1": "w2"})  # after w3 it says w5: the first item flips
    task = task_file({"name": "mc", "kind": "multiple-choice", "path": path})
    scores = score_tasks([task], model, worse, tokenizer, max_tokens=64)
    assert scores.baseline["tasks.mc.acc"] == 1.0 and scores.candidate["tasks.mc.acc"] == 0.5
    samples = scores.samples["tasks.mc.acc"]
    assert (samples.statistic, samples.baseline, samples.candidate) == ("mean", [1.0, 1.0], [0.0, 1.0])
    assert scores.items == {"mc": 2}


@pytest.mark.parametrize("record, message", [
    ({"context": "w1", "choices": ["w2"], "gold": 0}, "'choices' must be two or more texts"),
    ({"context": "w1", "choices": ["w2", "w3"], "gold": 2}, "'gold' 2 is no choice's index (0..1)"),
    ({"context": "w1", "choices": ["w2", "w3"], "gold": "w4"}, "'gold' 'w4' is not one of the choices"),
    ({"choices": ["w2", "w3"], "gold": 0}, "no 'context' or 'query' field"),
    ({"context": 3, "choices": ["w2", "w3"], "gold": 0}, "'context' must be text, got int"),
])
def test_a_bad_record_is_one_line_naming_file_and_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"context": "w1", "choices": ["w2", "w3"], "gold": 0}, record])
    task = task_file({"name": "mc", "kind": "multiple-choice", "path": path})
    with pytest.raises(ModelpressError) as caught:
        items(task)
    assert str(caught.value) == f"{path}:2: {message}"


def test_the_shipped_cloze_task_is_fixed_and_its_gold_ending_is_the_snippets_own():
    task = task_file({"name": "rt", "kind": "multiple-choice", "shipped": "rotten-tomatoes-cloze"})
    first, again = items(task), items(task)
    assert first == again and len(first) == 48
    assert all(len(i.choices) == 3 and len(set(i.choices)) == 3 for i in first)
    assert 8 <= sum(i.gold == 0 for i in first) <= 24  # the gold ending's place is drawn, not fixed
    snippets = {" ".join(t.split()) for t in __import__("modelpress.datasets.shipped", fromlist=["SHIPPED"])
                .SHIPPED["rotten-tomatoes"].load()["text"] if isinstance(t, str)}
    assert all(f"{i.context} {i.choices[i.gold]}" in snippets for i in first)
    limited = task_file({"name": "rt", "kind": "multiple-choice", "limit": 5, "shipped": "rotten-tomatoes-cloze"})
    assert items(limited) == first[:5]
