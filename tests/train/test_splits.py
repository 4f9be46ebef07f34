from collections import Counter

import pytest

from wmhkit.train.splits import gold_folds, train_val_split

GOLD = [f"gold{i:02d}" for i in range(20)]


def test_gold_test_folds_partition_the_scans_with_70_10_20_proportions():
    folds = gold_folds(GOLD, n_folds=5, val_fraction=0.1, seed=4)
    assert len(folds) == 5
    tested = Counter(scan for fold in folds for scan in fold.test)
    assert sorted(tested) == sorted(GOLD) and set(tested.values()) == {1}
    for fold in folds:
        assert (len(fold.train), len(fold.val), len(fold.test)) == (14, 2, 4)
        assert not set(fold.train) & set(fold.val) | set(fold.train) & set(fold.test) | set(fold.val) & set(fold.test)


def test_splits_are_deterministic_by_seed_and_depend_on_it():
    assert gold_folds(GOLD, seed=1) == gold_folds(list(reversed(GOLD)), seed=1)
    assert gold_folds(GOLD, seed=1) != gold_folds(GOLD, seed=2)
    assert train_val_split(GOLD, 0.2, seed=1) == train_val_split(GOLD, 0.2, seed=1)
    assert train_val_split(GOLD, 0.2, seed=1) != train_val_split(GOLD, 0.2, seed=2)


def test_gold_validation_scans_come_from_the_candidates_and_folds_stay_a_partition():
    with_lesion = GOLD[5:]  # gold00..gold04 are lesion-free
    default, preferring = gold_folds(GOLD, seed=3), gold_folds(GOLD, seed=3, val_candidates=with_lesion)
    assert any(set(fold.val) & set(GOLD[:5]) for fold in default)  # the seed would have drawn them
    for plain, fold in zip(default, preferring):
        assert fold.test == plain.test and len(fold.val) == len(plain.val) == 2
        assert set(fold.val) <= set(with_lesion)
        assert sorted(fold.train + fold.val) == sorted(plain.train + plain.val)
    only_one = gold_folds(GOLD, seed=3, val_candidates=[GOLD[19]])
    assert all(len(fold.val) == 2 for fold in only_one)  # topped up from the other scans
    assert all(GOLD[19] in fold.val for fold in only_one if GOLD[19] not in fold.test)


def test_silver_split_is_stratified_by_scanner():
    scans = [f"s{i:02d}" for i in range(30)]
    scanners = ["A"] * 20 + ["B"] * 10
    split = train_val_split(scans, 0.2, seed=0, strata=scanners)
    scanner_of = dict(zip(scans, scanners))
    assert Counter(scanner_of[s] for s in split.val) == {"A": 4, "B": 2}
    assert len(split.train) == 24


def test_too_few_gold_scans_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        gold_folds(GOLD[:4], n_folds=5)
