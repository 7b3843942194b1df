"""Training-time word/character vectors learned without labels (PPMI + truncated SVD).

Only the trainers import this (scipy and scikit-learn are the ``train`` extra);
the runtime reads the vectors from the models' ``.npz`` artifacts.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def ppmi_svd(seqs: list, dim: int, window: int = 3, min_count: int = 3, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Unit-length token vectors: truncated SVD (``U·sqrt(S)``) of the positive PMI matrix of
    co-occurrences within ``window`` tokens (weight 1/distance, context distribution smoothed ^0.75).
    Used by both trainers (emotion: characters and words; risk: characters)."""
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    counts = Counter(t for s in seqs for t in s)
    vocab = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    index = {t: i for i, t in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for s in seqs:
        ids = np.array([index.get(t, -1) for t in s], np.int64)
        for d in range(1, min(window, len(ids) - 1) + 1):
            a, b = ids[:-d], ids[d:]
            k = (a >= 0) & (b >= 0)
            rows += [a[k], b[k]]
            cols += [b[k], a[k]]
            vals.append(np.full(2 * int(k.sum()), 1.0 / d))
    n = len(vocab)
    if not n or not rows:
        return vocab, np.zeros((n, dim), np.float32)
    c = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    c.sum_duplicates()
    c = c.tocoo()
    total = c.data.sum()
    row_p = np.asarray(c.tocsr().sum(1)).ravel() / total
    ctx = np.bincount(c.col, c.data, n) ** 0.75
    ctx /= ctx.sum()
    pmi = np.log(c.data / total / row_p[c.row] / ctx[c.col])
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (c.row[keep], c.col[keep])), shape=(n, n))
    u, sv, _ = randomized_svd(ppmi, min(dim, n - 1), random_state=seed, n_iter=5)
    e = u * np.sqrt(sv)
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-9
    return vocab, e.astype(np.float32)
