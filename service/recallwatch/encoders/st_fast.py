"""A reduced-precision copy of a SentenceTransformer that is fast where it counts.

``reduced_copy`` deep-copies the model and changes only its transformer (the module holding
``auto_model``):

- each ``nn.Linear`` computes in bf16 or fp16 (``ReducedLinear``: weights stored in it, input
  cast to it), so do attention and the feed-forward activation on the linear layers' outputs; the
  residual stream, the embeddings and every LayerNorm stay fp32 (the sum of a bf16 layer output
  and the fp32 stream is fp32). A model cast to bf16 wholesale rounds the residual stream at every
  layer: on SciFact it moved relevant documents across rank 100 (recall@100 -0.0033) where this
  does not (minimum cosine to fp32 0.99992 vs 0.99997);
- on a CPU, in bf16, the linear layers go through oneDNN's fused inner product (bias added inside
  the matrix product: eager PyTorch's bf16 ``addmm`` first copies the bias into the output, a full
  extra pass over every activation), where a self-check shows the op exists and agrees;
- a batch without padding (every attention-mask entry 1) is run without the mask, which is exact
  (``attention_mask=None`` means "attend everywhere" in transformers) and lets scaled-dot-product
  attention skip building and applying a mask. Documents longer than ``max_seq_length`` (most
  abstracts) are truncated to the same length, so most corpus batches have no padding.

What each measured on all-MiniLM-L6-v2 is in ``bench/encode_speed.py`` and docs/daemon.md. The
copy is only used after the caller's parity probe (``encoders.precision``) accepts it.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from recallwatch.encoders.precision import Resolved

__all__ = ["ReducedLinear", "drop_full_attention_mask", "reduce_linears", "reduced_copy"]

log = logging.getLogger(__name__)

DTYPES: dict[Resolved, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def transformer_module(model: Any) -> Any | None:
    """The first module of a SentenceTransformer that holds a transformers model, or None."""
    for module in model:
        if isinstance(getattr(module, "auto_model", None), torch.nn.Module):
            return module
    return None


class ReducedLinear(torch.nn.Module):
    """``nn.Linear`` in a reduced precision: weights stored in it, the input cast to it.

    The output stays in the reduced precision (what the next matrix product and attention want);
    where it is added to the fp32 residual stream, the sum and the LayerNorm after it are fp32.
    ``fused``: through oneDNN's inner product with the bias inside the product (CPU, bf16).
    """

    def __init__(self, linear: torch.nn.Linear, dtype: torch.dtype, *, fused: bool) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.fused = fused
        self.weight = torch.nn.Parameter(linear.weight.detach().to(dtype), requires_grad=False)
        self.bias = (
            None
            if linear.bias is None
            else torch.nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T + bias`` in the weights' precision."""
        x = x.to(self.weight.dtype)
        if self.fused:
            out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
                x.contiguous(), self.weight, self.bias, "none", [], ""
            )
            return out
        return F.linear(x, self.weight, self.bias)


def _onednn_linear_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear runs here in ``dtype`` and matches ``F.linear``."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=gen).to(dtype)
    w = torch.randn(8, 16, generator=gen).to(dtype)
    b = torch.randn(8, generator=gen).to(dtype)
    try:
        with torch.inference_mode():
            got = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
            want = F.linear(x.float(), w.float(), b.float())
    except (RuntimeError, AttributeError) as exc:
        log.debug("oneDNN fused linear unavailable in %s: %s", dtype, exc)
        return False
    return bool(torch.allclose(got.float(), want, rtol=0.05, atol=0.1))


def reduce_linears(module: torch.nn.Module, dtype: torch.dtype, *, fused: bool) -> int:
    """Replace every ``nn.Linear`` under ``module`` by a ``ReducedLinear``; return how many."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, ReducedLinear(child, dtype, fused=fused))
                replaced += 1
    return replaced


def drop_full_attention_mask(model: torch.nn.Module) -> None:
    """Call ``model.forward`` without ``attention_mask`` when the mask is all ones (no padding).

    sentence-transformers calls ``auto_model.forward`` directly (not through ``__call__``), so a
    forward pre-hook would not run; the bound method is wrapped on the instance instead.
    """
    forward = model.forward

    @functools.wraps(forward)
    def without_full_mask(*args: Any, **kwargs: Any) -> Any:
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and bool(mask.all()):
            kwargs["attention_mask"] = None
        return forward(*args, **kwargs)

    model.forward = without_full_mask


def _outputs_to_fp32(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
    """Forward hook: cast the reduced-precision tensors a module returns back to fp32."""
    if not isinstance(output, dict):
        return output
    for key, value in output.items():
        if isinstance(value, torch.Tensor) and value.dtype in (torch.bfloat16, torch.float16):
            output[key] = value.float()
        elif isinstance(value, tuple) and all(isinstance(v, torch.Tensor) for v in value):
            output[key] = tuple(
                v.float() if v.dtype in (torch.bfloat16, torch.float16) else v for v in value
            )
    return output


def reduced_copy(model: Any, precision: Resolved, device: str) -> Any | None:
    """A copy of ``model`` whose transformer computes in ``precision``; None if it has none."""
    if precision == "fp32":
        return model
    dtype = DTYPES[precision]
    fast = copy.deepcopy(model)
    transformer = transformer_module(fast)
    if transformer is None:
        return None
    auto_model: torch.nn.Module = transformer.auto_model
    fused = device.split(":", 1)[0] == "cpu" and precision == "bf16" and _onednn_linear_works(dtype)
    replaced = reduce_linears(auto_model, dtype, fused=fused)
    if replaced == 0:
        return None
    drop_full_attention_mask(auto_model)
    transformer.register_forward_hook(_outputs_to_fp32)
    log.debug("%s linear layers: %d (oneDNN fused: %s)", precision, replaced, fused)
    return fast
