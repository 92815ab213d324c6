#!/usr/bin/env python3
"""gen_prompt_fixtures.py — the BM25 oracle for tests/test_retrieve.c.

An independent, straightforward implementation of the variant src/arms/retrieve.c documents
(Okapi BM25, k1 = 1.2, b = 0.75, Lucene's non-negative idf ln(1 + (N - df + 0.5)/(df + 0.5)),
query tokens summed with multiplicity), written from the formula, not from the C code:
rank_bm25's BM25Okapi uses a different idf (ln((N - df + 0.5)/(df + 0.5)) with an epsilon
floor), so it is not used here.

Tokenization: re.findall(r"\\w+", text.lower()).

Corpus: ../shared/data/banking77/train.jsonl (documents = the inputs, in file order);
queries: every 100th row of ../shared/data/banking77/test.jsonl plus a few fixed strings.
The fixture stores only row ids, doc indices and scores — never the data.

Usage: python3 tests/ref/gen_prompt_fixtures.py [SHARED_DIR]   (default ../shared)
Writes tests/data/prompt/bm25_banking77.json.
"""
import json
import math
import os
import re
import sys
from collections import Counter

K1, B, TOPK = 1.2, 0.75, 10


def tokenize(s):
    return re.findall(r"\w+", s.lower())


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
    rows = [json.loads(l) for l in open(os.path.join(shared, "data/banking77/train.jsonl"), encoding="utf-8")]
    test = [json.loads(l) for l in open(os.path.join(shared, "data/banking77/test.jsonl"), encoding="utf-8")]
    docs = [Counter(tokenize(r["input"])) for r in rows]
    dl = [sum(c.values()) for c in docs]
    n = len(docs)
    avgdl = sum(dl) / n
    df = Counter()
    for c in docs:
        df.update(c.keys())
    idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    norm = [K1 * (1.0 - B + B * l / avgdl) for l in dl]
    postings = {}
    for i, c in enumerate(docs):
        for t, f in c.items():
            postings.setdefault(t, []).append((i, f))

    def query(text):
        acc = {}
        for t in tokenize(text):
            if t not in idf:
                continue
            w = idf[t]
            for i, f in postings[t]:
                acc[i] = acc.get(i, 0.0) + w * f * (K1 + 1.0) / (f + norm[i])
        top = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:TOPK]
        return [[i, s] for i, s in top]

    queries = []
    for r in test[::100]:
        queries.append({"test_id": r["id"], "top": query(r["input"])})
    fixed = ["card", "my card has not arrived yet", "Why was I charged a FEE for my transfer??",
             "exchange rate exchange rate", "zzzz unknownword", ""]
    for q in fixed:
        queries.append({"text": q, "top": query(q)})
    out = {
        "generator": "tests/ref/gen_prompt_fixtures.py",
        "variant": "Okapi BM25, Lucene idf ln(1+(N-df+0.5)/(df+0.5)), query tokens with multiplicity",
        "k1": K1, "b": B, "topk": TOPK,
        "n_docs": n, "n_terms": len(df), "avgdl": avgdl, "total_tokens": sum(dl),
        "queries": queries,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "prompt", "bm25_banking77.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    print(path, len(queries), "queries")


if __name__ == "__main__":
    main()
