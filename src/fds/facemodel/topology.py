"""Mesh edge topology in eos's layout (used for occluding-contour fitting)."""

from __future__ import annotations

import numpy as np


def edge_topology(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every edge of a triangle mesh with its two adjacent faces.

    Returns ``(adjacent_faces [E,2], adjacent_vertices [E,2])``, 0-based; a boundary edge has face −1 in
    its second slot. Edges are sorted by (smaller vertex, larger vertex). eos expects both arrays + 1.
    """
    tri = np.asarray(triangles, np.int64)
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"triangles must be [T,3], got shape {tri.shape}")
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])  # [3T,2]
    faces = np.tile(np.arange(len(tri)), 3)
    edges.sort(axis=1)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, faces = edges[order], faces[order]
    unique, start, counts = np.unique(edges, axis=0, return_index=True, return_counts=True)
    if counts.max(initial=0) > 2:
        raise ValueError("mesh is non-manifold: an edge is shared by more than two triangles")
    adjacent = np.full((len(unique), 2), -1, np.int64)
    adjacent[:, 0] = faces[start]
    two = counts == 2
    adjacent[two, 1] = faces[start[two] + 1]
    return adjacent, unique
