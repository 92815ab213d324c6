#!/usr/bin/env python3
"""Generate the reference fixtures for the scoring tests (tests/data/score/*.json).

Python is a fixture generator only: the C tests read the committed JSON files and
never run Python. Re-run after changing the inputs below:

    pip install sacrebleu==2.6.0 rouge-score==0.1.2 scikit-learn scipy numpy
    python3 tests/ref/gen_score_fixtures.py

References used:
  - sacreBLEU 2.x: BLEU (13a tokenizer, smooth 'exp') and chrF defaults
  - rouge-score: RougeScorer(['rouge1','rouge2','rougeL'], use_stemmer=False).score_multi
  - SQuAD v2.0 evaluate script: normalize_answer / compute_exact / compute_f1 (copied below)
  - scikit-learn: accuracy, precision_recall_fscore_support, f1_score
  - scipy / numpy: binomial test (McNemar), normal quantiles, percentiles
"""
import collections
import json
import os
import random
import re
import string
import sys

import numpy as np
import sacrebleu
import scipy
import sklearn
from rouge_score import rouge_scorer
from scipy import stats
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "score")

# ---------------------------------------------------------------------------------
# text corpora
# ---------------------------------------------------------------------------------

WORDS = ("the a an of to in on for with by from at is was were be been it this that "
         "dog cat man woman bank account card transfer payment refund money loan "
         "quick brown fox jumps over lazy river city London Paris U.S. Dr. Mr. "
         "café naïve résumé über Zürich 日本語 東京 Москва данные").split()
PUNCT = [".", ",", "!", "?", ";", ":", "'s", "n't", "(", ")", '"', "-", "--", "/", "&", "...", "$", "%"]
NUMS = ["3.14", "1,000", "5-6", "2024", "10.5%", "$20", "1.", ",5", "7,", "3-", "0.5", "42"]
ODD = ["&amp;", "&quot;", "&lt;b&gt;", "<skipped>", "e.g.", "a.b,c", "x-\ny", "tab\there", "nbsp\u00a0space",
       "em\u2014dash", "smart \u201cquotes\u201d", "half\u2009thin", "wide\u3000space", "end-\n", "İstanbul",
       "K\u212aelvin", "x_y", "A.B.C.", "..", ",,", ".5.", "'quoted'"]


def rand_sentence(rng, n_min=3, n_max=18):
    n = rng.randint(n_min, n_max)
    toks = []
    for _ in range(n):
        r = rng.random()
        if r < 0.70:
            toks.append(rng.choice(WORDS))
        elif r < 0.82:
            toks.append(rng.choice(PUNCT))
        elif r < 0.92:
            toks.append(rng.choice(NUMS))
        else:
            toks.append(rng.choice(ODD))
    # glue some punctuation to the previous token like real text
    out = ""
    for t in toks:
        if out and t in (".", ",", "!", "?", ";", ":", "'s", "n't", ")", "...", "%") and rng.random() < 0.8:
            out += t
        else:
            out += (" " if out else "") + t
    if rng.random() < 0.5:
        out += rng.choice([".", "!", "?", " .", "", "\n", " ", "  "])
    if rng.random() < 0.5:
        out = out[0].upper() + out[1:]
    return out


def perturb(rng, s):
    toks = s.split(" ")
    out = []
    for t in toks:
        r = rng.random()
        if r < 0.10:
            continue
        if r < 0.20:
            out.append(rng.choice(WORDS))
        elif r < 0.25:
            out.append(t)
            out.append(rng.choice(WORDS + PUNCT))
        else:
            out.append(t)
    if rng.random() < 0.15 and len(out) > 2:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def tok13a_cases(rng):
    fixed = ["Hello, world!", "The dog bit the man.", "It wasn't surprising.", "3.14 and 1,000 and 5-6.",
             "U.S.A. e.g. Dr. Smith's", "a&amp;b &quot;q&quot; &lt;tag&gt; &amp;lt;", "line one-\nline two\nthree",
             "<skipped> words", "  leading and trailing  \n", "", " ", "price: $20 (approx.) -- ok?",
             "x.y,z 1.a a.1 ,1 1, .", "tab\tsep\u00a0nbsp\u2009thin\u3000wide", "ends with dash-",
             "digits-9 9-digits 9-9", "{braces} [brackets] ~tilde `tick` ^caret _under_ |pipe|",
             "café naïve 日本語。東京、 Москва,данные.", "..., ,,, ...a a...", "'quoted' \"double\""]
    cases = fixed + [rand_sentence(rng) for _ in range(200)]
    tok = Tokenizer13a()
    return [{"text": c, "tok": tok(c.rstrip())} for c in cases]


def bleu_corpora(rng):
    corpora = []
    # sacreBLEU README example (two reference streams): BLEU 48.53
    corpora.append({
        "name": "sacrebleu_readme",
        "hyps": ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."],
        "refs": [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
                 ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]],
    })
    corpora.append({"name": "no_match", "hyps": ["abc def"], "refs": [["xyz uvw qrs"]]})
    corpora.append({"name": "short_hyp", "hyps": ["the cat", "a"], "refs": [["the cat sat on the mat", "a b c d"]]})
    corpora.append({"name": "empty_hyp", "hyps": ["", "the cat sat"], "refs": [["the cat", "the cat sat on"]]})
    corpora.append({"name": "unigram_only", "hyps": ["c b a"], "refs": [["a b c"]]})
    corpora.append({"name": "no_4gram_match", "hyps": ["the cat sat on a mat today"], "refs": [["the cat sat in the mat today"]]})
    for k in range(6):
        n = rng.randint(5, 60)
        nrefs = 1 + (k % 3)
        streams = [[] for _ in range(nrefs)]
        hyps = []
        for _ in range(n):
            base = rand_sentence(rng)
            for r in range(nrefs):
                streams[r].append(base if r == 0 else perturb(rng, base))
            hyps.append(perturb(rng, base) if rng.random() < 0.9 else rand_sentence(rng))
        corpora.append({"name": f"random_{k}_refs{nrefs}", "hyps": hyps, "refs": streams})
    bleu = BLEU()
    chrf = CHRF()
    for c in corpora:
        b = bleu.corpus_score(c["hyps"], c["refs"])
        ch = chrf.corpus_score(c["hyps"], c["refs"])
        c["bleu"] = b.score
        c["counts"] = list(b.counts)
        c["totals"] = list(b.totals)
        c["sys_len"] = b.sys_len
        c["ref_len"] = b.ref_len
        c["chrf"] = ch.score
        # per-segment statistics (exact integers)
        segs = []
        for i, h in enumerate(c["hyps"]):
            refs_i = [s[i] for s in c["refs"]]
            bs = bleu._extract_corpus_statistics([h], [[r] for r in refs_i])[0]
            cs = chrf._extract_corpus_statistics([h], [[r] for r in refs_i])[0]
            segs.append({"bleu_stats": [int(x) for x in bs], "chrf_stats": [int(x) for x in cs]})
        c["segments"] = segs
    return corpora


# SQuAD v2.0 evaluate script (official), the parts we reproduce:
def normalize_answer(s):
    def remove_articles(text):
        regex = re.compile(r'\b(a|an|the)\b', re.UNICODE)
        return re.sub(regex, ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()
    return white_space_fix(remove_articles(remove_punc(lower(s))))


def get_tokens(s):
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def ascii_lower_safe(s):
    # The C side lowercases ASCII only: keep SQuAD cases where that is equivalent.
    return s.lower() == "".join(ch.lower() if ch.isascii() else ch for ch in s)


def gen_pairs(rng):
    fixed = [
        ("The cat sat on the mat.", ["the cat sat on a mat"]),
        ("Paris", ["paris", "Paris, France"]),
        ("", [""]),
        ("", ["something"]),
        ("the a an", ["The"]),
        ("New York City", ["new york", "NYC"]),
        ("an apple a day", ["Apple a day!"]),
        ("theatre another", ["the atre an other"]),
        ("police killed the gunman", ["police kill the gunman"]),
        ("the gunman kill police", ["police kill the gunman"]),
        ("café résumé", ["cafe resume", "café, résumé"]),
        ("A B C D E", ["E D C B A"]),
    ]
    pairs = list(fixed)
    for _ in range(150):
        base = rand_sentence(rng, 1, 25)
        nrefs = rng.choice([1, 1, 2, 3])
        refs = [base] + [perturb(rng, base) for _ in range(nrefs - 1)]
        hyp = perturb(rng, base) if rng.random() < 0.85 else rand_sentence(rng, 1, 10)
        pairs.append((hyp, refs))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    out = []
    for hyp, refs in pairs:
        sc = scorer.score_multi(refs, hyp)
        rec = {"hyp": hyp, "refs": refs,
               "rouge1": sc["rouge1"].fmeasure, "rouge2": sc["rouge2"].fmeasure, "rougeL": sc["rougeL"].fmeasure,
               "rouge_tokens": scorer._tokenizer.tokenize(hyp)}
        # SQuAD: only where Unicode and ASCII lowercasing agree (documented C limitation)
        if all(ascii_lower_safe(t) for t in [hyp] + refs):
            rec["squad_em"] = max(compute_exact(r, hyp) for r in refs)
            rec["squad_f1"] = max(compute_f1(r, hyp) for r in refs)
            rec["squad_norm"] = normalize_answer(hyp)
        out.append(rec)
    return out


def classify_cases(rng):
    cases = []
    # binary, sklearn docs-like
    cases.append({"name": "tiny", "labels": ["cat", "dog", "fish"],
                  "gold": ["cat", "dog", "fish", "cat", "dog", "fish"],
                  "pred": ["cat", "fish", "dog", "cat", "dog", "bird"]})
    for k in range(4):
        nl = [2, 3, 7, 20][k]
        labels = [f"L{j:02d}" for j in range(nl)]
        n = [50, 200, 500, 1000][k]
        gold, pred = [], []
        for _ in range(n):
            g = rng.choice(labels[: max(1, nl - 1)]) if k == 3 else rng.choice(labels)  # k=3: one class absent from gold
            gold.append(g)
            r = rng.random()
            if r < 0.6:
                pred.append(g)
            elif r < 0.93:
                pred.append(rng.choice(labels))
            else:
                pred.append(rng.choice(["", "unknown", g.lower(), g + " "]))  # invalid
        cases.append({"name": f"random_{k}", "labels": labels, "gold": gold, "pred": pred})
    for c in cases:
        labels = c["labels"]
        present = sorted(set(c["gold"]) | (set(c["pred"]) & set(labels)))
        p, r, f, s = precision_recall_fscore_support(c["gold"], c["pred"], labels=labels, zero_division=0)
        c["accuracy"] = accuracy_score(c["gold"], c["pred"])
        c["macro_f1"] = f1_score(c["gold"], c["pred"], labels=present, average="macro", zero_division=0)
        c["micro_f1"] = f1_score(c["gold"], c["pred"], labels=labels, average="micro", zero_division=0)
        c["weighted_f1"] = f1_score(c["gold"], c["pred"], labels=labels, average="weighted", zero_division=0)
        c["macro_precision"] = float(np.mean(
            precision_recall_fscore_support(c["gold"], c["pred"], labels=present, zero_division=0)[0]))
        c["macro_recall"] = float(np.mean(
            precision_recall_fscore_support(c["gold"], c["pred"], labels=present, zero_division=0)[1]))
        c["per_class"] = {lab: [float(p[i]), float(r[i]), float(f[i]), int(s[i])] for i, lab in enumerate(labels)}
    return cases


def stats_cases(rng):
    mc = []
    for b, c in [(0, 0), (1, 6), (0, 5), (2, 8), (10, 20), (25, 25), (3, 30), (100, 130), (500, 430), (1, 1000)]:
        p = stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c > 0 else 1.0
        mc.append({"b": b, "c": c, "p": float(min(1.0, p))})
    ppf = [{"p": p, "z": float(stats.norm.ppf(p))} for p in [1e-10, 0.001, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8,
                                                             0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-10]]
    cdf = [{"z": z, "p": float(stats.norm.cdf(z))} for z in [-8, -3, -1.96, -1, 0, 0.5, 1.6448536269514722, 3]]
    wil = []
    for k, n, lvl in [(8, 10, 0.95), (0, 10, 0.95), (10, 10, 0.95), (50, 100, 0.95), (812, 1000, 0.95), (3, 7, 0.9)]:
        z = stats.norm.ppf(1 - (1 - lvl) / 2)
        ph = k / n
        den = 1 + z * z / n
        cen = (ph + z * z / (2 * n)) / den
        half = z / den * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
        wil.append({"k": k, "n": n, "level": lvl, "lo": float(max(0, cen - half)), "hi": float(min(1, cen + half))})
    q = []
    for n in [1, 2, 5, 10, 101]:
        x = sorted(rng.uniform(0, 1000) for _ in range(n))
        q.append({"x": x, "q": [0.0, 0.5, 0.9, 0.99, 1.0],
                  "v": [float(np.percentile(x, 100 * qq)) for qq in [0.0, 0.5, 0.9, 0.99, 1.0]]})
    return {"mcnemar": mc, "ppf": ppf, "cdf": cdf, "wilson": wil, "quantile": q}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20240601)
    meta = {"sacrebleu": sacrebleu.__version__, "sklearn": sklearn.__version__, "scipy": scipy.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}
    files = {
        "tok13a.json": {"meta": meta, "cases": tok13a_cases(rng)},
        "bleu_chrf.json": {"meta": meta, "corpora": bleu_corpora(rng)},
        "textgen.json": {"meta": meta, "cases": gen_pairs(rng)},
        "classify.json": {"meta": meta, "cases": classify_cases(rng)},
        "stats.json": {"meta": meta, **stats_cases(rng)},
    }
    for name, obj in files.items():
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print("wrote", os.path.join("tests/data/score", name))


if __name__ == "__main__":
    main()
