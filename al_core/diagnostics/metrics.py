"""Pure metric functions on small arrays: a confusion matrix, calibration bins, Wilson intervals,
confident-learning label issues. No catalog, no SQL: each is checked by hand or against
scikit-learn in the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_CHUNK = 65_536
CALIBRATION_COLUMNS = ["bin", "low", "high", "n", "confidence", "accuracy"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion_metrics(cm: np.ndarray) -> dict[str, Any]:
    """Metrics of a confusion matrix ``cm`` (K x K counts, rows truth, columns prediction).

    Returns ``precision``, ``recall``, ``f1``, ``support`` (arrays of shape (K,)), ``accuracy``,
    ``balanced_accuracy`` and ``macro`` / ``weighted`` (dicts of precision, recall, f1), equal
    to scikit-learn's with ``zero_division=0``:

    - per class, every row/column of ``cm`` (``labels=classes``);
    - ``macro`` averages over the classes that occur in the truth *or* the predictions (the union
      scikit-learn uses by default): a class only predicted counts with recall 0; a class in
      neither (a run's class absent from this subset) is left out;
    - ``balanced_accuracy`` is the mean recall over the classes present in the truth (classes
      only predicted are left out, as scikit-learn does, with its warning);
    - ``weighted`` weighs each class by its support.

    Raises ValueError for a matrix that is not square, negative, or all zero.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, not of shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError("a confusion matrix cannot hold negative counts")
    n = int(cm.sum())
    if n == 0:
        raise ValueError("an empty confusion matrix has no metrics")
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, 2 * tp + (predicted - tp) + (support - tp))
    present = (support > 0) | (predicted > 0)
    macro = {"precision": float(precision[present].mean()), "recall": float(recall[present].mean()),
             "f1": float(f1[present].mean())}
    weights = support / support.sum()
    weighted = {"precision": float(np.sum(precision * weights)), "recall": float(np.sum(recall * weights)),
                "f1": float(np.sum(f1 * weights))}
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int),
            "accuracy": float(tp.sum() / n), "balanced_accuracy": float(recall[support > 0].mean()),
            "macro": macro, "weighted": weighted}


def most_confused(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each true class (row of the K x K ``cm``): the column of its most frequent wrong
    prediction (-1 when it has none; ties go to the first column) and how many, shapes (K,)."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    idx = off.argmax(axis=1) if off.size else np.zeros(0, dtype=int)
    count = off.max(axis=1) if off.size else np.zeros(0, dtype=int)
    return np.where(count > 0, idx, -1), count


def wilson(k: Any, n: Any, z: float = 1.96) -> tuple[Any, Any]:
    """Wilson score interval of a proportion ``k / n`` (scalars or arrays of one shape).

    ``(low, high)``; ``n == 0`` gives ``(0, 1)`` (nothing known). Raises ValueError when
    ``k`` is outside ``[0, n]`` or ``n`` is negative.
    """
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    if np.any(n_arr < 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("wilson needs 0 <= k <= n")
    safe = np.where(n_arr > 0, n_arr, 1.0)
    phat = k_arr / safe
    denom = 1 + z * z / safe
    center = (phat + z * z / (2 * safe)) / denom
    half = z * np.sqrt(phat * (1 - phat) / safe + z * z / (4 * safe * safe)) / denom
    low = np.where(n_arr > 0, np.clip(center - half, 0.0, 1.0), 0.0)
    high = np.where(n_arr > 0, np.clip(center + half, 0.0, 1.0), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def equal_width_bins(conf: np.ndarray, bins: int) -> np.ndarray:
    """The bin (0..bins-1) of each confidence in [0, 1], shape (n,): bin i holds
    [i/bins, (i+1)/bins), the last one also 1.0; the edges are the doubles ``i / bins``."""
    edges = np.arange(bins + 1) / bins
    return np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)


def calibration_table(n: np.ndarray, conf_sum: np.ndarray, correct_sum: np.ndarray,
                      low: np.ndarray, high: np.ndarray) -> tuple[pd.DataFrame, float]:
    """The reliability table and the expected calibration error from per-bin sums (shape (B,)).

    ``confidence`` / ``accuracy`` are each bin's means (NaN for an empty bin); ECE is
    ``sum_b n_b / N * |accuracy_b - confidence_b|`` over the non-empty bins.
    """
    n = np.asarray(n, dtype=np.int64)
    total = int(n.sum())
    if total == 0:
        raise ValueError("no samples to calibrate")
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(n > 0, np.asarray(conf_sum, float) / np.maximum(n, 1), np.nan)
        accuracy = np.where(n > 0, np.asarray(correct_sum, float) / np.maximum(n, 1), np.nan)
    gaps = np.abs(accuracy - confidence)
    ece = float(np.sum((n[n > 0] / total) * gaps[n > 0]))
    table = pd.DataFrame({"bin": np.arange(len(n)), "low": np.asarray(low, float),
                          "high": np.asarray(high, float), "n": n, "confidence": confidence,
                          "accuracy": accuracy}, columns=CALIBRATION_COLUMNS)
    return table, ece


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 15,
                equal_mass: bool = False) -> tuple[pd.DataFrame, float]:
    """Reliability table ``[bin, low, high, n, confidence, accuracy]`` and ECE.

    ``conf``: top-1 confidences in [0, 1], shape (n,); ``correct``: whether each top-1 is
    right, shape (n,). Equal width: ``bins`` bins, bin i holds [i/bins, (i+1)/bins) and the
    last also 1.0 (every bin listed, empty ones with n 0). Equal mass: the samples in order of
    confidence cut into ``bins`` runs of (nearly) equal size (ties kept in input order); ``low``
    / ``high`` are each bin's smallest / largest confidence; empty bins (fewer samples than
    bins) are left out. Raises ValueError for mismatched or empty input, ``bins < 1``, or
    confidences outside [0, 1] (NaN included).
    """
    conf = np.asarray(conf, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if conf.ndim != 1 or conf.shape != correct.shape:
        raise ValueError(f"conf and correct must be 1-d of one length, not {conf.shape} and {correct.shape}")
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1, not {bins!r}")
    bins = int(bins)
    if conf.size == 0:
        raise ValueError("no samples to calibrate")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidences must lie in [0, 1] (no NaN)")
    if equal_mass:
        order = np.argsort(conf, kind="stable")
        which = np.empty(conf.size, dtype=np.int64)
        which[order] = (np.arange(conf.size) * bins) // conf.size
        keep = np.unique(which)
        n = np.bincount(which, minlength=bins)[keep]
        sums = np.bincount(which, weights=conf, minlength=bins)[keep]
        hits = np.bincount(which, weights=correct, minlength=bins)[keep]
        low = np.array([conf[which == b].min() for b in keep])
        high = np.array([conf[which == b].max() for b in keep])
        table, ece = calibration_table(n, sums, hits, low, high)
        table["bin"] = np.arange(len(keep))
        return table, ece
    which = equal_width_bins(conf, bins)
    edges = np.arange(bins + 1) / bins
    return calibration_table(np.bincount(which, minlength=bins),
                             np.bincount(which, weights=conf, minlength=bins),
                             np.bincount(which, weights=correct, minlength=bins),
                             edges[:-1], edges[1:])


def confident_issues(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Confident-learning label issues (Northcutt et al., the off-diagonal of the confident joint).

    ``probs``: predicted probabilities, shape (n, K); ``labels``: each sample's given class as
    an index into the K columns, shape (n,). The threshold of class j is the mean of p_j over
    the samples labeled j (+inf for a class nobody is labeled with, so it is never suggested).
    A sample labeled i is an issue when, among the classes whose probability reaches their
    threshold, the most probable one is some j != i (j is the suggestion), and the most
    probable class overall is not i either (cleanlab's ``filter_by="both"``: an underfit class
    with low thresholds does not turn the labels the model agrees with into issues).

    Returns arrays of shape (n,): ``issue`` (bool), ``suggested`` (column index, -1 where no
    issue), ``self_confidence`` (p_i) and ``score`` (the normalized margin
    ``(p_i - max_{j != i} p_j + 1) / 2`` in [0, 1]: the lower, the likelier the label is wrong),
    and ``thresholds`` of shape (K,).
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs must be (n, K) and labels (n,), not {probs.shape} and {labels.shape}")
    n, k = probs.shape
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be class indices in [0, {k})")
    rows = np.arange(n)
    self_conf = probs[rows, labels].astype(np.float64)
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=self_conf, minlength=k)
    thresholds = np.full(k, np.inf)
    np.divide(sums, counts, out=thresholds, where=counts > 0)
    issue = np.zeros(n, dtype=bool)
    best = np.zeros(n, dtype=np.int64)
    margin = np.ones(n)
    t = thresholds.astype(probs.dtype) if probs.dtype.kind == "f" else thresholds
    for start in range(0, n, _CHUNK):  # in chunks: a few (chunk, K) temporaries at a time
        p = probs[start:start + _CHUNK]
        lab = labels[start:start + _CHUNK]
        r = np.arange(len(p))
        above = p >= t[None, :]
        b = np.where(above, p, -np.inf).argmax(axis=1)
        best[start:start + len(p)] = b
        # off the confident joint's diagonal, and the model's own top class disagrees too
        # (cleanlab's "both"): a label the model predicts is not called an error
        issue[start:start + len(p)] = above.any(axis=1) & (b != lab) & (p.argmax(axis=1) != lab)
        if k > 1:
            others = np.array(p, dtype=np.float64 if p.dtype.kind != "f" else p.dtype)
            others[r, lab] = -np.inf
            margin[start:start + len(p)] = self_conf[start:start + len(p)] - others.max(axis=1)
    return {"issue": issue, "suggested": np.where(issue, best, -1), "self_confidence": self_conf,
            "score": (margin + 1.0) / 2.0, "thresholds": thresholds}


def per_class_frame(classes: Sequence[str], cm: np.ndarray, m: dict[str, Any]) -> pd.DataFrame:
    """``class, precision, recall, f1, support, confused_with, confused_n`` per class of ``cm``."""
    idx, count = most_confused(cm)
    return pd.DataFrame({
        "class": list(classes), "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
        "support": m["support"],
        # object dtype: pandas 3 would store None as NaN in a text column
        "confused_with": pd.Series([classes[i] if i >= 0 else None for i in idx], dtype=object),
        "confused_n": count.astype(int),
    })
