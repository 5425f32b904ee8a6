"""A SentenceTransformer's reduced-precision copy: fused linears, mask dropping, fp32 output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from recallwatch.encoders.st_fast import (
    ReducedLinear,
    _onednn_linear_works,
    drop_full_attention_mask,
    reduce_linears,
    reduced_copy,
    transformer_module,
)


class Recorder(torch.nn.Module):
    """A model whose forward records the attention mask it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[Any] = []

    def forward(self, input_ids: Any = None, attention_mask: Any = None) -> Any:
        self.masks.append(attention_mask)
        return input_ids


def test_full_attention_mask_is_dropped_and_padding_kept() -> None:
    model = Recorder()
    drop_full_attention_mask(model)
    ids = torch.ones(2, 4, dtype=torch.long)
    model.forward(input_ids=ids, attention_mask=torch.ones(2, 4, dtype=torch.long))
    padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    model.forward(input_ids=ids, attention_mask=padded)
    model.forward(input_ids=ids)
    assert model.masks[0] is None
    assert model.masks[1] is padded
    assert model.masks[2] is None


@pytest.mark.parametrize("fused", [False, True])
def test_reduced_linears_compute_what_nn_linear_does(fused: bool) -> None:
    if fused and not _onednn_linear_works(torch.bfloat16):
        pytest.skip("oneDNN's fused linear is not available in this torch build")
    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    x = torch.randn(3, 5, 16, generator=gen)
    with torch.inference_mode():
        want = net(x)
    assert reduce_linears(net, torch.bfloat16, fused=fused) == 2
    assert isinstance(net[0], ReducedLinear) and net[0].weight.dtype == torch.bfloat16
    with torch.inference_mode():
        got = net(x)  # an fp32 input is cast; the output is bf16
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want, rtol=0.05, atol=0.05)


def test_reduced_copy_leaves_the_fp32_model_alone(minilm_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)
    texts = ["a query about proteins", "Cells divide. " * 60, "short"]  # padded in one batch
    before = model.encode(texts)
    fast = reduced_copy(model, "bf16", "cpu")
    assert fast is not None and fast is not model
    plain, reduced = transformer_module(model), transformer_module(fast)
    assert plain is not None and reduced is not None
    assert {p.dtype for p in plain.auto_model.parameters()} == {torch.float32}
    # Linear weights in bf16; embeddings and LayerNorms (the residual stream) stay fp32.
    assert {p.dtype for p in reduced.auto_model.parameters()} == {torch.float32, torch.bfloat16}
    got = fast.encode(texts)
    assert got.dtype == np.float32
    cos = (got * before).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(before, axis=1)
    assert cos.min() > 0.999
    assert np.array_equal(model.encode(texts), before)
    assert reduced_copy(model, "fp32", "cpu") is model
