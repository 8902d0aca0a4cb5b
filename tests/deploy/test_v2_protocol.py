"""V2 request validation: the rules the server uses to answer 400 instead of 500."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelpress.deploy.v2_protocol import MAX_BATCH, V2Tensor, request_problems, specs_from_ort

PIXELS = [V2Tensor("pixels", "FP32", (-1, 1, 28, 28))]
TEXT = [V2Tensor("input_ids", "INT64", (-1, -1)), V2Tensor("attention_mask", "INT64", (-1, -1))]


def test_specs_from_onnxruntime_session(cnn_onnx):
    import onnxruntime as ort

    session = ort.InferenceSession(cnn_onnx.SerializeToString(), providers=["CPUExecutionProvider"])
    assert specs_from_ort(session.get_inputs()) == PIXELS
    assert [s.metadata() for s in specs_from_ort(session.get_outputs())] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "embedding", "datatype": "FP32", "shape": [-1, 32]}]


def test_unservable_type_is_refused():
    with pytest.raises(ValueError, match="seq"):
        specs_from_ort([SimpleNamespace(name="s", type="seq(tensor(float))", shape=[])])


def test_a_fitting_request_has_no_problems():
    assert request_problems(PIXELS, [("pixels", "FP32", [3, 1, 28, 28])]) == []
    assert request_problems(TEXT, [("input_ids", "INT64", [2, 7]), ("attention_mask", "INT64", [2, 7])]) == []


@pytest.mark.parametrize(("received", "message"), [
    ([("image", "FP32", [1, 1, 28, 28])], "unknown input 'image'"),
    ([("image", "FP32", [1, 1, 28, 28])], "missing input 'pixels'"),
    ([("pixels", "FP64", [1, 1, 28, 28])], "datatype FP64, the model expects FP32"),
    ([("pixels", "FP32", [1, 28, 28])], "has 3 dims"),
    ([("pixels", "FP32", [1, 1, 28, 27])], "dim 3 is 27, the model expects 28"),
    ([("pixels", "FP32", [0, 1, 28, 28])], "empty tensor"),
    ([("pixels", "FP32", [MAX_BATCH + 1, 1, 28, 28])], "exceeds the server's limit"),
    ([("pixels", "FP32", [1, 1, 28, 28]), ("pixels", "FP32", [1, 1, 28, 28])], "more than once"),
])
def test_bad_requests_name_the_problem(received, message):
    problems = request_problems(PIXELS, received)
    assert any(message in p for p in problems), problems


def test_inputs_must_agree_on_batch():
    problems = request_problems(TEXT, [("input_ids", "INT64", [2, 7]), ("attention_mask", "INT64", [3, 7])])
    assert problems == ["inputs disagree on the batch size: [2, 3]"]
