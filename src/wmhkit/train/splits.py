"""Deterministic train/validation/test splits of scans.

* :func:`train_val_split` — bronze and silver stages: a ``val_fraction`` share to
  validation, optionally stratified (silver: by ``scanner``) so every scanner is
  represented in both sets in proportion.
* :func:`gold_folds` — gold stage: k-fold cross-validation whose test folds
  partition the gold scans (each scan is tested exactly once); within each fold a
  ``val_fraction`` share of *all* gold scans validates and the rest trains
  (70:10:20 for 5 folds and 0.1).

Everything is drawn from ``numpy.random.default_rng([seed, stream])``; the same
inputs and seed give the same split on any machine.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Scan IDs of one training unit (a stage, or one fold of a cross-validated stage)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()
    fold: int | None = None

    def roles(self) -> dict[str, str]:
        """``{scan_id: "train" | "val" | "test"}``."""
        return {**{s: "train" for s in self.train}, **{s: "val" for s in self.val}, **{s: "test" for s in self.test}}


def train_val_split(
    scan_ids: Sequence[str], val_fraction: float = 0.2, *, seed: int = 0, strata: Sequence[str] | None = None,
) -> Split:
    """Split scans into train and validation sets.

    Parameters
    ----------
    scan_ids
        Unique scan IDs (order does not matter: the result depends on the set).
    val_fraction
        Share of scans for validation, in (0, 1). Per stratum,
        ``round(n × val_fraction)`` scans (at least one when the stratum has two or
        more; none from a single-scan stratum) go to validation.
    seed
        Seed of the shuffle.
    strata
        Group of each scan (e.g. its scanner), parallel to ``scan_ids``.

    Raises
    ------
    ValueError
        For fewer than two scans, repeated IDs or a fraction outside (0, 1).

    Examples
    --------
    >>> split = train_val_split([f"s{i}" for i in range(10)], 0.2, seed=1)
    >>> len(split.train), len(split.val)
    (8, 2)
    """
    ids = _unique_sorted(scan_ids)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(ids) < 2:
        raise ValueError(f"need at least 2 scans to split into train and validation, got {len(ids)}")
    group_of = dict(zip(scan_ids, strata)) if strata is not None else {s: "" for s in ids}
    if strata is not None and len(strata) != len(scan_ids):
        raise ValueError(f"strata ({len(strata)}) must be parallel to scan_ids ({len(scan_ids)})")
    rng = np.random.default_rng([seed, 1])
    val: list[str] = []
    for group in sorted(set(group_of.values())):
        members = [s for s in ids if group_of[s] == group]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        n_val = round(len(members) * val_fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        val.extend(shuffled[:n_val])
    if not val:  # every stratum held one scan: take one validation scan overall
        val = [ids[int(rng.integers(len(ids)))]]
    val_set = set(val)
    return Split(train=tuple(s for s in ids if s not in val_set), val=tuple(sorted(val_set)))


def gold_folds(
    scan_ids: Sequence[str], n_folds: int = 5, val_fraction: float = 0.1, *, seed: int = 0,
    val_candidates: Collection[str] | None = None,
) -> list[Split]:
    """K-fold cross-validation splits of the gold scans.

    Parameters
    ----------
    scan_ids
        Unique gold scan IDs.
    n_folds
        Number of folds (≥ 2); the test folds differ in size by at most one scan.
    val_fraction
        Validation share of all gold scans per fold (``round(n × val_fraction)``,
        at least one).
    seed
        Seed of the shuffles.
    val_candidates
        Scans preferred for validation (e.g. those whose gold mask has a lesion:
        a lesion-free validation scan gives no lesion block and no IoU); the others
        validate only when a fold has too few candidates. ``None``: every scan.

    Returns
    -------
    list of Split
        ``n_folds`` splits; their ``test`` sets partition ``scan_ids``.

    Raises
    ------
    ValueError
        When there are too few scans for the folds (each fold needs a test scan, a
        validation scan and a training scan).
    """
    ids = _unique_sorted(scan_ids)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    n_val = max(1, round(len(ids) * val_fraction))
    largest_test = -(-len(ids) // n_folds)
    if len(ids) < n_folds or len(ids) - largest_test - n_val < 1:
        raise ValueError(
            f"{len(ids)} gold scans are too few for {n_folds} folds with {n_val} validation scan(s) each; "
            "label more scans or lower folds"
        )
    candidates = set(ids if val_candidates is None else val_candidates)
    order = [ids[i] for i in np.random.default_rng([seed, 2]).permutation(len(ids))]
    test_folds = np.array_split(np.array(order, dtype=object), n_folds)
    splits = []
    for fold, test in enumerate(test_folds):
        test_set = set(test.tolist())
        rest = [s for s in order if s not in test_set]
        rest = [rest[i] for i in np.random.default_rng([seed, 3, fold]).permutation(len(rest))]
        chosen = [s for s in rest if s in candidates][:n_val]
        chosen += [s for s in rest if s not in chosen][:n_val - len(chosen)]
        val = sorted(chosen)
        train = sorted(s for s in rest if s not in chosen)
        splits.append(Split(train=tuple(train), val=tuple(val), test=tuple(sorted(test_set)), fold=fold))
    return splits


def _unique_sorted(scan_ids: Sequence[str]) -> list[str]:
    ids = [str(s) for s in scan_ids]
    if len(set(ids)) != len(ids):
        repeated = sorted({s for s in ids if ids.count(s) > 1})
        raise ValueError(f"scan IDs repeat: {repeated[:5]}; each scan must appear once")
    return sorted(ids)
