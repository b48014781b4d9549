"""Nearest neighbours in a feature space (section 6.1, Fig. 4, claim C17).

The paper shows that images whose last-hidden-layer vectors are close in Euclidean distance
are semantically alike even when their pixels are not. The measurable form used here: the
share of each query's k nearest neighbours (the query itself excluded) that carry its label,
computed in the 4096-d feature space and in pixel space alike.
"""

from __future__ import annotations

import torch


def nearest_neighbours(features: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """[Q, k] indices of the k points of `features` [N, D] nearest to each query index, nearest first,
    never the query itself."""
    if not 0 < k < len(features):
        raise ValueError(f"k must be in [1, {len(features) - 1}] for {len(features)} points, got {k}")
    points = features.flatten(1).double()
    distances = torch.cdist(points[queries], points)
    distances[torch.arange(len(queries)), queries] = float("inf")
    return distances.topk(k, largest=False).indices


def label_agreement(features: torch.Tensor, labels: torch.Tensor, k: int,
                    queries: torch.Tensor | None = None) -> float:
    """Mean share of the queries' k nearest neighbours that have the query's label (all points by default)."""
    queries = torch.arange(len(features)) if queries is None else queries
    neighbours = nearest_neighbours(features, queries, k)
    return (labels[neighbours] == labels[queries, None]).double().mean().item()
