"""Getis-Ord Gi* for grid cells, through PySAL's `esda.G_Local`.

Gi* asks whether a cell and its touching neighbours together hold more harm
than the study area's average would give them. Two choices matter and are ours:

- Study area: the cells holding harm plus every cell touching one of them
  (with zero harm). Using the whole bounding box would fill the mean with empty
  fields and water and call every occupied cell significant; using only occupied
  cells would ignore that their empty neighbours dilute them.
- Inference: the analytical normal approximation (`permutations=0`, the z-score
  of Ord and Getis 1995, as ArcGIS reports it), one-sided for high values. It
  is fast enough for a force area at 150 m; permutation tests over a lattice
  of hundreds of thousands of cells are not.
- Many tests at once: `significant_high` applies the Benjamini-Hochberg false
  discovery rate over the cells that could be chosen (as ArcGIS's FDR option
  does), so among thousands of cells the flagged ones are mostly real.

Harm is very skewed, which makes the normal approximation generous: a lone
cell with far more harm than its surroundings can still come out significant.
Gi* here is a filter against cells that are high only by chance among quiet
neighbours, not a cluster detector.
"""
from __future__ import annotations

import numpy as np

from processors.hotspots.grid import Grid, pack, unpack


def gi_star(grid: Grid, keys: np.ndarray, harm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and one-sided p-values (high harm) of Gi* for the cells `keys` holding `harm`.

    `keys` are packed cell indices (grid.pack), unique. Returns arrays aligned with `keys`.
    """
    import warnings

    from esda.getisord import G_Local
    from libpysal.graph import Graph

    keys = np.asarray(keys, np.int64)
    if len(keys) < 3:
        return np.zeros(len(keys)), np.ones(len(keys))
    i, j = unpack(keys)
    offsets = grid.touching_offsets()
    around = [pack(i + di, j + dj) for di, dj in offsets]
    lattice = np.unique(np.concatenate([keys, *around]))
    y = np.zeros(len(lattice))
    y[np.searchsorted(lattice, keys)] = harm

    li, lj = unpack(lattice)
    focal, neighbour = [np.arange(len(lattice))], [np.arange(len(lattice))]  # self-weight: the star in Gi*
    for di, dj in offsets:
        nk = pack(li + di, lj + dj)
        pos = np.searchsorted(lattice, nk)
        pos[pos == len(lattice)] = 0
        present = lattice[pos] == nk
        focal.append(np.nonzero(present)[0])
        neighbour.append(pos[present])
    focal_a = np.concatenate(focal)
    neighbour_a = np.concatenate(neighbour)
    order = np.lexsort((neighbour_a, focal_a))
    graph = Graph.from_arrays(focal_a[order], neighbour_a[order], np.ones(len(order)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = G_Local(y, graph, transform="B", permutations=0, star=True)
    z = np.asarray(g.Zs, dtype=np.float64)
    from scipy.stats import norm

    p = norm.sf(z)  # one-sided: significantly HIGH harm only
    at = np.searchsorted(lattice, keys)
    return z[at], p[at]


def significant_high(z: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """Cells significantly HIGH at false discovery rate `alpha` (Benjamini-Hochberg over these cells)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha * np.arange(1, m + 1) / m
    k = int(np.nonzero(passed)[0].max()) + 1 if passed.any() else 0
    out = np.zeros(m, bool)
    out[order[:k]] = True
    return out & (np.asarray(z) > 0)
