#!/usr/bin/env python3
"""sklearn_baseline.py — the scikit-learn reference for the classic arm (src/arms/classic.c).

Reference only: no test depends on it. It measures, on this machine and in the same
conditions as bench/bench_classic.c, what the "usual" strong n-gram baseline scores:

    FeatureUnion(TfidfVectorizer(word, 1-2, sublinear_tf),
                 TfidfVectorizer(char_wb, 2-5, sublinear_tf))  ->  LinearSVC(C)

Each vectorizer lowercases, uses smooth idf and L2-normalises its own block (so a row
has norm sqrt(2)), exactly what the C arm does by default.

Usage (from the repository root, scikit-learn installed, e.g. in a venv):
    python3 tests/ref/sklearn_baseline.py [--data ../shared/data] [--C 1.0] [--threads 2]
Prints one block per dataset: featurize+fit time, C-search time, test accuracy,
prediction throughput.
"""
import argparse
import json
import os
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

GRID = [0.1, 0.3, 1.0, 3.0, 10.0]


def load(path):
    xs, ys = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            xs.append(o["input"])
            ys.append(str(o["output"]))
    return xs, ys


TOKEN_PATTERN = r"(?u)\b\w\w+\b"   # scikit-learn's default; --min-token 1 gives \b\w+\b


def features():
    return FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True,
                                 sublinear_tf=True, smooth_idf=True, norm="l2",
                                 token_pattern=TOKEN_PATTERN)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True,
                                 sublinear_tf=True, smooth_idf=True, norm="l2")),
    ])


def fit(xs, ys, C, times=None):
    t0 = time.perf_counter()
    f = features()
    X = f.fit_transform(xs)
    t1 = time.perf_counter()
    clf = LinearSVC(C=C, loss="squared_hinge", dual=True, max_iter=1000, tol=1e-4)
    clf.fit(X, ys)
    if times is not None:
        times.extend([t1 - t0, time.perf_counter() - t1])
    return f, clf


def accuracy(f, clf, xs, ys):
    pred = clf.predict(f.transform(xs))
    return sum(p == y for p, y in zip(pred, ys)) / len(ys)


def run(name, data, C, seed):
    tr_x, tr_y = load(os.path.join(data, name, "train.jsonl"))
    te_x, te_y = load(os.path.join(data, name, "test.jsonl"))
    dev_path = os.path.join(data, name, "dev.jsonl")
    if os.path.exists(dev_path):
        sel_tr_x, sel_tr_y = tr_x, tr_y
        dv_x, dv_y = load(dev_path)
    else:
        sel_tr_x, dv_x, sel_tr_y, dv_y = train_test_split(
            tr_x, tr_y, test_size=0.1, stratify=tr_y, random_state=seed)

    t0 = time.perf_counter()
    parts = []
    f, clf = fit(tr_x, tr_y, C, parts)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_te = f.transform(te_x)
    pred = clf.predict(X_te)
    t_pred = time.perf_counter() - t0
    acc = sum(p == y for p, y in zip(pred, te_y)) / len(te_y)

    # full C search (select on dev/holdout, refit on all train)
    t0 = time.perf_counter()
    best = None
    dev_accs = []
    for c in GRID:
        fc, cc = fit(sel_tr_x, sel_tr_y, c)
        a = accuracy(fc, cc, dv_x, dv_y)
        dev_accs.append((c, a))
        if best is None or a > best[1]:
            best = (c, a)
    f2, clf2 = fit(tr_x, tr_y, best[0])
    t_search = time.perf_counter() - t0
    acc2 = accuracy(f2, clf2, te_x, te_y)

    print(f"== {name} (sklearn, n_train={len(tr_x)}, n_test={len(te_x)})")
    print(f"  fixed C={C}: featurize+fit {t_fit:.2f} s (featurize {parts[0]:.2f} s, "
          f"LinearSVC {parts[1]:.2f} s), test acc {acc:.4f}, "
          f"predict {len(te_x) / t_pred:.0f} ex/s (featurize+predict)")
    print("  C search: " + ", ".join(f"C={c:g} dev {a:.4f}" for c, a in dev_accs))
    print(f"  C search total {t_search:.2f} s, chosen C={best[0]:g}, test acc {acc2:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", default="banking77,sst2")
    ap.add_argument("--min-token", type=int, default=2, choices=[1, 2],
                    help="shortest word token (2 = scikit-learn's default pattern)")
    a = ap.parse_args()
    global TOKEN_PATTERN
    if a.min_token == 1:
        TOKEN_PATTERN = r"(?u)\b\w+\b"
    for name in a.datasets.split(","):
        run(name, a.data, a.C, a.seed)


if __name__ == "__main__":
    main()
