"""The device side of a step, as far as a CPU can show it: batches follow the device they are sent to, collectives
pick their side by backend, a pretraining micro-step runs on the ``meta`` device (tensors without data: any host
sync — ``.item()``, ``int(t)``, a data-dependent shape such as ``torch.unique`` or a boolean index — raises there),
and every embedding kind compiles forward and backward as one graph."""

from __future__ import annotations

import pytest
import torch
from test_model import KINDS, batch, build, inputs

from zhbert.config import ConfigError
from zhbert.device import to_device
from zhbert.model import masked_positions
from zhbert.train.config import EngineConfig, PretrainConfig
from zhbert.train.pretrain import Interval, on_device


def collator_batch(kind: str) -> dict[str, torch.Tensor]:
    """A batch with the keys the masking collator gives: the model's inputs, ``masked`` and ``maskable``."""
    b = batch()
    return inputs(b, kind) | {"labels": b["labels"], "masked": b["labels"] != -100,
                              "maskable": b["attention_mask"].bool()}


def test_to_device_moves_every_tensor_and_keeps_dtypes():
    b = collator_batch("fusion")
    moved = to_device(b, "meta")
    assert moved.keys() == b.keys()
    assert all(v.device.type == "meta" and v.dtype == b[k].dtype and v.shape == b[k].shape for k, v in moved.items())


def test_collectives_reduce_cpu_tensors_under_gloo_and_device_tensors_otherwise():
    from zhbert.train.engine import collective_device

    cuda = torch.device("cuda", 1)
    assert collective_device("gloo", cuda) == torch.device("cpu")
    assert collective_device("nccl", cuda) == cuda
    assert collective_device("gloo", torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_a_pretraining_micro_step_needs_no_host_sync(kind):
    """Forward, backward and the interval's counters of one micro-step, on the meta device."""
    model = build(kind=kind).train().to("meta")
    step = on_device(collator_batch(kind), "meta")
    out = model(**{k: v for k, v in step.items() if k != "maskable"})
    out.loss.backward()
    interval = Interval("meta")
    interval.add(out, step, torch.ones(len(model.bert.embeddings.tokens.weight), dtype=torch.long, device="meta"))
    assert interval.sums.device.type == "meta" and interval.counts["micro"] == 1


def test_the_interval_counts_real_tokens_and_computed_positions():
    model = build(kind="char").eval()
    b = collator_batch("char")
    step = on_device(b, "cpu")
    with torch.no_grad():
        out = model(**{k: v for k, v in step.items() if k != "maskable"})
    interval = Interval("cpu")
    token_chars = torch.ones(len(model.bert.embeddings.tokens.weight), dtype=torch.long)
    for _ in range(2):
        interval.add(out, step, token_chars)
    total = interval.reduce(lambda t: t.tolist())
    real, masked = int(b["attention_mask"].sum()), int(b["masked"].sum())
    assert total["micro"] == 2 and total["positions"] == 2 * b["input_ids"].numel() and total["tokens"] == 2 * real
    assert total["masked"] == total["masked_chars"] == 2 * masked and total["chars"] == 2 * real
    assert total["mlm_nats"] == pytest.approx(2 * out.mlm_loss.item() * masked)


def test_mlm_positions_give_the_same_loss_as_the_labels():
    model = build(kind="fusion").eval()
    b = batch()
    with torch.no_grad():
        found = model(**inputs(b, "fusion"), labels=b["labels"])
        given = model(**inputs(b, "fusion"), labels=b["labels"], mlm_positions=masked_positions(b["labels"]))
    assert torch.equal(found.logits, given.logits) and torch.equal(found.loss, given.loss)


def test_fusion_rows_of_the_vocab_equal_rows_of_the_distinct_ids():
    """The static path (glyph features for the whole vocab) computes the same embedding and gradients."""
    b = batch()
    outs, grads = [], []
    for rows in ("distinct", "vocab"):
        model = build(kind="fusion", fusion_rows=rows).eval()
        out = model(**inputs(b, "fusion"), labels=b["labels"])
        out.loss.backward()
        outs.append(out.logits)
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_compiles_forward_and_backward_without_a_graph_break(kind):
    """``fullgraph=True``: a graph break is an error. The aot_eager backend traces what inductor would (dynamo,
    then AOTAutograd for the backward) without generating and building C++ kernels, which takes minutes on a
    small CPU; graph breaks are dynamo's, whatever the backend."""
    torch._dynamo.reset()
    model = build(kind=kind).eval()
    b = batch()
    step = {**inputs(b, kind), "labels": b["labels"], "mlm_positions": masked_positions(b["labels"])}
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(**step)
    out.loss.backward()
    assert torch.allclose(out.loss, model(**step).loss, atol=1e-5)
    assert all(p.grad is not None for n, p in model.named_parameters() if "pair" not in n)


def test_compile_is_refused_under_zero3():
    """ZeRO-3's parameter hooks are kept out of compilation: with fullgraph=True every module would fail."""
    PretrainConfig(engine=EngineConfig(zero_stage=2, compile=True))
    with pytest.raises(ConfigError, match="engine.compile"):
        PretrainConfig(engine=EngineConfig(zero_stage=3, compile=True))
