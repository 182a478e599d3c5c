"""Unsupervised clustering accuracy: a clusterer's assignments scored against labels under the best
one-to-one matching of clusters to classes.

  ACC = max over one-to-one maps m: clusters -> classes of (1/N) sum_n [m(pred_n) == label_n],

found by the Hungarian algorithm on the confusion matrix (`scipy.optimize.linear_sum_assignment`,
maximizing the matched counts). This is how InfoGAN reports its categorical code on MNIST
(Chen et al. 2016, arXiv:1606.03657, Sec. 7.1: 5% error), and the usual metric of deep clustering
papers. With more clusters than classes, the unmatched clusters count as errors; with fewer, the
unmatched classes do.
"""

import numpy as np
from scipy import optimize


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_clusters: int | None = None,
                     num_classes: int | None = None) -> np.ndarray:
  """counts[k, c] = #{n : pred_n = k, label_n = c}, int64 [num_clusters, num_classes]."""
  pred, labels = np.asarray(pred).reshape(-1), np.asarray(labels).reshape(-1)
  if pred.shape != labels.shape:
    raise ValueError(f"pred and labels must have the same length; got {pred.shape[0]} and {labels.shape[0]}")
  if pred.size and (pred.min() < 0 or labels.min() < 0):
    raise ValueError("cluster ids and labels must be non-negative integers")
  k = int(num_clusters if num_clusters is not None else (pred.max() + 1 if pred.size else 0))
  c = int(num_classes if num_classes is not None else (labels.max() + 1 if labels.size else 0))
  counts = np.zeros((k, c), np.int64)
  np.add.at(counts, (pred.astype(np.int64), labels.astype(np.int64)), 1)
  return counts


def matching(counts: np.ndarray) -> dict[int, int]:
  """{cluster: class} maximizing the matched counts (one-to-one)."""
  rows, cols = optimize.linear_sum_assignment(np.asarray(counts), maximize=True)
  return {int(r): int(c) for r, c in zip(rows, cols)}


def accuracy_from_confusion(counts: np.ndarray) -> float:
  """The best one-to-one matching's share of correctly assigned examples."""
  counts = np.asarray(counts)
  total = counts.sum()
  if total == 0:
    raise ValueError("no examples to score")
  rows, cols = optimize.linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / total)


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray, num_clusters: int | None = None,
                     num_classes: int | None = None) -> float:
  """Clustering accuracy of cluster ids `pred` [N] against `labels` [N] (see the module docstring)."""
  return accuracy_from_confusion(confusion_matrix(pred, labels, num_clusters, num_classes))
