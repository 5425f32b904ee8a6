"""A sentence-transformers checkpoint run by OpenVINO on the CPU (encoder kind ``openvino``).

The model's transformer (``auto_model``) is converted once per process with
``openvino.convert_model`` (a torch module in, no optimum) and compiled for the CPU, in bf16 where
the CPU computes it natively (AVX-512 BF16 or AMX) and the parity probe accepts it
(``encoders.precision``: every probe embedding within cosine ``PARITY_MIN_COSINE`` of fp32), else
in fp32. The modules after the transformer (pooling, normalisation, dense layers) run as the
checkpoint defines them, in torch, on the transformer's output: the embeddings are the model's.

Token ids are computed once per tokenizer and text list and cached on disk
(``TokenCache``: ``$RECALLWATCH_TOKEN_CACHE``, default ``~/.cache/recallwatch/tokens``), keyed by
the tokenizer's files, the maximum sequence length and the texts: checkpoints of one training
run share their tokenizer, so from the second checkpoint on the held-out set is never tokenized
again. Texts are encoded longest first in batches of ``batch_size``, each padded to its own
longest text. The model is compiled with ``PERFORMANCE_HINT: THROUGHPUT`` and one batch is kept in
flight per infer request (one per CPU stream); a finished batch's pooling runs while the others
compute.

No int8: measured with NNCF on an AMX-INT8 CPU (docs/daemon.md, "The openvino encoder"), weight
compression with dynamic activation quantization was twice as slow as bf16 and calibrated static
quantization saved about what its per-checkpoint calibration cost, at a far larger embedding error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import TextKind
from recallwatch.encoders.precision import (
    PARITY_MIN_COSINE,
    Capability,
    Parity,
    Precision,
    ProbeShift,
    Resolved,
    capability,
    parity,
    probe_sample,
    shift_or_why,
    taken_as_configured,
)
from recallwatch.errors import CheckpointError, ConfigError

__all__ = ["OpenVINOEncoder", "TokenCache", "tokenizer_fingerprint"]

log = logging.getLogger(__name__)

#: The tokenizer files whose bytes key the token cache.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "merges.txt",
    "vocab.json",
)


def tokenizer_fingerprint(model_dir: Path) -> str:
    """A digest of a checkpoint's tokenizer files (checkpoints of one run share it)."""
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        for f in (model_dir / name, *model_dir.glob(f"*/{name}")):
            if f.is_file():
                h.update(name.encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:24]


class TokenCache:
    """Token ids of text lists on disk, keyed by tokenizer, maximum length and texts."""

    def __init__(self, directory: Path | None = None) -> None:
        default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recallwatch"
        env = os.environ.get("RECALLWATCH_TOKEN_CACHE")
        self.directory = directory or (Path(env) if env else default / "tokens")
        self.hits = 0
        self.misses = 0

    def _path(self, fingerprint: str, max_length: int, texts: Sequence[str]) -> Path:
        h = hashlib.sha256(f"{fingerprint}\0{max_length}\0{len(texts)}\0".encode())
        for t in texts:
            h.update(t.encode("utf-8", errors="surrogatepass"))
            h.update(b"\0")
        return self.directory / fingerprint / f"{h.hexdigest()[:32]}.npz"

    def ids(
        self, fingerprint: str, max_length: int, texts: Sequence[str], tokenize: Any
    ) -> list[npt.NDArray[np.int64]]:
        """Each text's token ids (special tokens included, truncated to ``max_length``)."""
        path = self._path(fingerprint, max_length, texts)
        try:
            with np.load(path) as z:
                flat, offsets = z["flat"], z["offsets"]
            self.hits += 1
            return [flat[offsets[i] : offsets[i + 1]].astype(np.int64) for i in range(len(texts))]
        except (OSError, KeyError, ValueError):
            pass
        self.misses += 1
        encoded = tokenize(list(texts), truncation=True, max_length=max_length)["input_ids"]
        lengths = np.fromiter((len(x) for x in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter((t for x in encoded for t in x), dtype=np.int32, count=int(offsets[-1]))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, flat=flat, offsets=offsets)
            tmp.replace(path)
        except OSError as exc:  # a read-only home: no cache, same ids
            log.warning("token cache not written (%s): %s", path, exc)
        return [np.asarray(x, dtype=np.int64) for x in encoded]


#: How every model is compiled: OpenVINO's CPU streams (as many as the CPU plugin finds useful)
#: run several batches at once, one per infer request. optimum-intel, and so
#: sentence-transformers' openvino backend, compiles with ``PERFORMANCE_HINT: LATENCY`` (one
#: stream, one batch at a time).
THROUGHPUT = {"PERFORMANCE_HINT": "THROUGHPUT"}

#: Converted OpenVINO models by checkpoint directory: converted once per process.
_CONVERTED: dict[str, Any] = {}


def _convert(model: Any, model_dir: Path, input_names: Sequence[str]) -> Any:
    key = str(model_dir.resolve())
    if key in _CONVERTED:
        return _CONVERTED[key]
    import openvino as ov
    import torch

    auto_model = model[0].auto_model

    class _LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = auto_model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class _LastHiddenTyped(_LastHidden):
        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    wrapper = _LastHiddenTyped() if "token_type_ids" in input_names else _LastHidden()
    tokenizer = model[0].tokenizer
    padded = tokenizer(["a short text", "a somewhat longer text to pad"], padding=True)
    example = tuple(
        torch.tensor(padded[n])
        if n in padded
        else torch.zeros_like(torch.tensor(padded["input_ids"]))
        for n in input_names
    )
    # Tracing warns about data-dependent branches of transformers' code: not ours to act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(
            wrapper.eval(),
            example_input=example,
            input=[([-1, -1], ov.Type.i64) for _ in input_names],
        )
    _CONVERTED[key] = converted
    return converted


class OpenVINOEncoder:
    """Encode texts with a sentence-transformers checkpoint compiled by OpenVINO for the CPU."""

    name = "openvino"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_seq_length: int | None = None,
        normalize: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        show_progress: bool | None = None,
        precision: Precision = "fp32",
        capability_of: Capability = capability,
        parity_threshold: float = PARITY_MIN_COSINE,
        probe_texts: int = 8,
        token_cache: TokenCache | None = None,
    ) -> None:
        from recallwatch.encoders.sentence_transformers import load_offline

        if device.split(":", 1)[0] != "cpu":
            raise ConfigError([("device", "the openvino encoder runs on the CPU (device: cpu)")])
        if precision == "fp16":
            raise ConfigError([("precision", "the openvino encoder computes in fp32 or bf16")])
        self.model_dir = Path(model_dir)
        if (
            not (self.model_dir / "config.json").is_file()
            and not (self.model_dir / "modules.json").is_file()
        ):
            raise CheckpointError(
                "not a sentence-transformers model directory (no modules.json or config.json)",
                path=self.model_dir,
            )
        self.batch_size = batch_size
        self.normalize = normalize
        self.parity_threshold = parity_threshold
        self.probe_texts = probe_texts
        self.tokens = token_cache or TokenCache()
        self.model: Any = load_offline("SentenceTransformer", self.model_dir, "cpu")
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        self.max_length = int(self.model.max_seq_length)
        self.tokenizer = self.model[0].tokenizer
        self.fingerprint = tokenizer_fingerprint(self.model_dir)
        names = list(getattr(self.tokenizer, "model_input_names", ["input_ids", "attention_mask"]))
        self.input_names = [
            n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names
        ]
        self.after = list(self.model)[1:]  # pooling, normalisation, dense: run as defined
        prompts: dict[str, str] = dict(getattr(self.model, "prompts", {}) or {})
        self.prompts: dict[TextKind, str] = {
            "query": (query_prompt if query_prompt is not None else prompts.get("query")) or "",
            "document": (
                document_prompt if document_prompt is not None else prompts.get("document")
            )
            or "",
        }
        self._ov = _convert(self.model, self.model_dir, self.input_names)
        self._compiled: dict[Resolved, Any] = {}
        self.parity: Parity | None = None
        self.precision: Resolved | None = None
        self._candidate: Resolved | None = None
        if precision == "auto":
            self._candidate = capability_of("cpu")
            if self._candidate is None:
                self.precision = "fp32"
        else:
            self.precision = precision
        #: What the evaluation stores: asked, used, the probe's verdict and probe shift.
        self.precision_report = taken_as_configured(
            precision,
            self.precision,
            "the probe has not run"
            if self.precision is None
            else "the CPU has no native bf16"
            if precision == "auto"
            else f"{precision} as configured",
        )

    def _compiled_for(self, precision: Resolved) -> Any:
        if precision not in self._compiled:
            import openvino as ov

            hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]
            self._compiled[precision] = ov.Core().compile_model(
                self._ov, "CPU", {"INFERENCE_PRECISION_HINT": hint, **THROUGHPUT}
            )
        return self._compiled[precision]

    def prepare(self, samples: Mapping[TextKind, Sequence[str]]) -> None:
        """Settle ``auto``: bf16 if its probe embeddings stay within the threshold of fp32's."""
        if self.precision is not None or self._candidate is None:
            return
        candidate = self._candidate
        picked = [t for texts in samples.values() for t in probe_sample(texts, self.probe_texts)]
        if not picked:
            self.precision = "fp32"
            self.precision_report = taken_as_configured("auto", "fp32", "no probe texts")
            return
        ref = self._run(picked, "document", "fp32", 1)
        got = self._run(picked, "document", candidate, len(picked))
        self.parity = parity(ref, got, candidate, self.parity_threshold)
        self.precision = candidate if self.parity.passed else "fp32"
        self.precision_report = self.parity.report(
            "auto", self.precision, *self._shift(samples, candidate)
        )
        (log.info if self.parity.passed else log.warning)(
            "openvino precision auto: %s; %s; using %s",
            self.parity.describe(),
            self.precision_report.describe_shift() or "probe shift not measured",
            self.precision,
        )

    def _shift(
        self, samples: Mapping[TextKind, Sequence[str]], candidate: Resolved
    ) -> tuple[ProbeShift | None, str]:
        """The probe shift of ``candidate`` against f32 (None, and why, where not measured)."""
        return shift_or_why(
            samples,
            lambda texts, kind: self._run(texts, kind, "fp32", self.batch_size),
            lambda texts, kind: self._run(texts, kind, candidate, self.batch_size),
        )

    def _run(
        self, texts: Sequence[str], kind: TextKind, precision: Resolved, batch_size: int
    ) -> npt.NDArray[np.float32]:
        prompt = self.prompts[kind]
        full = [prompt + t for t in texts] if prompt else list(texts)
        ids = self.tokens.ids(self.fingerprint, self.max_length, full, self.tokenizer)
        compiled = self._compiled_for(precision)
        pad = int(self.tokenizer.pad_token_id or 0)
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out: npt.NDArray[np.float32] | None = None
        # One batch in flight per infer request (as many as the compiled model's streams); the
        # checkpoint's modules after the transformer run here while the next batches compute.
        requests = [compiled.create_infer_request() for _ in range(self._requests(compiled))]
        jobs: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]] | None] = [None] * len(
            requests
        )

        def finish(slot: int) -> None:
            nonlocal out
            job = jobs[slot]
            if job is None:
                return
            requests[slot].wait()
            rows, mask = job
            emb = self._after(requests[slot].get_output_tensor(0).data, mask)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[rows] = emb
            jobs[slot] = None

        for b, start in enumerate(range(0, len(order), batch_size)):
            slot = b % len(requests)
            finish(slot)
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                input_ids[j, : len(ids[i])] = ids[i]
                mask[j, : len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            requests[slot].start_async([feed[n] for n in self.input_names])
            jobs[slot] = (rows, mask)
        for slot in range(len(requests)):
            finish(slot)
        if out is None:
            return np.zeros((0, 0), dtype=np.float32)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    @staticmethod
    def _requests(compiled: Any) -> int:
        """How many batches the compiled model computes at once (its optimal infer requests)."""
        try:
            return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except (RuntimeError, TypeError, ValueError):
            return 1

    def _after(self, hidden: Any, mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The checkpoint's modules after the transformer, on one batch's last hidden state."""
        import torch

        features: dict[str, Any] = {
            "token_embeddings": torch.from_numpy(np.array(hidden, dtype=np.float32)),
            "attention_mask": torch.from_numpy(mask),
        }
        with torch.no_grad():
            for module in self.after:
                features = module(features)
        return np.asarray(features["sentence_embedding"].numpy(), dtype=np.float32)

    def encode(self, texts: Sequence[str], kind: TextKind) -> npt.NDArray[np.float32]:
        """Encode queries or documents (with that kind's prompt)."""
        if self.precision is None:
            self.prepare({kind: texts})
        assert self.precision is not None
        return self._run(texts, kind, self.precision, self.batch_size)
