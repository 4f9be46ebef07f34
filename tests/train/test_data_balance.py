"""``data.balance_by``: every group of a manifest column gets an equal share of the epoch's slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.io.manifest import read_manifest
from wmhkit.io.nifti import save_image, save_mask
from wmhkit.train.config import ConfigError, DataConfig, StageConfig, load_config
from wmhkit.train.data import epoch_order, load_slice_set, stage_label_sources

PATCH = 16
SHAPE = (4 * PATCH, PATCH, PATCH)


def test_each_group_gets_an_equal_share_whatever_its_size() -> None:
    groups = np.array([0] * 900 + [1] * 90 + [2] * 10)
    order = epoch_order(groups.size, np.random.default_rng(0), 300, groups)
    assert order.size == 300
    np.testing.assert_array_equal(np.bincount(groups[order]), [100, 100, 100])
    small = order[groups[order] == 2]
    assert np.bincount(small, minlength=1000)[990:].tolist() == [10] * 10  # each small-group slice ten times
    large = order[groups[order] == 0]
    assert np.unique(large).size == large.size  # the large group's slices are not repeated


def test_balanced_order_is_shuffled_and_reproducible() -> None:
    groups = np.repeat([0, 1], [50, 5])
    first = epoch_order(groups.size, np.random.default_rng(3), 40, groups)
    np.testing.assert_array_equal(first, epoch_order(groups.size, np.random.default_rng(3), 40, groups))
    assert 0 < (groups[first[:20]] == 1).sum() < 20  # interleaved, not group after group


def test_a_single_group_draws_as_without_groups() -> None:
    plain = epoch_order(100, np.random.default_rng(5), 30)
    np.testing.assert_array_equal(plain, epoch_order(100, np.random.default_rng(5), 30, np.zeros(100, np.int64)))


def _cohort(root: Path, loads: dict[str, int], datasets: dict[str, str]) -> Path:
    """One scan per subject with ``loads[subject]`` lesion blocks (of four along x); a manifest naming its dataset."""
    lines = ["subject\tdataset\tflair\tgold"]
    for subject, blocks in loads.items():
        flair = np.full(SHAPE, 0.4, np.float32)
        gold = np.zeros(SHAPE, np.uint8)
        for block in range(blocks):
            gold[block * PATCH + 4: block * PATCH + 8, 4:8, :] = 1
        flair[gold == 1] = 0.9
        save_image(Image(flair, np.eye(4)), root / f"{subject}_flair.nii.gz")
        save_mask(Image(gold, np.eye(4)), root / f"{subject}_gold.nii.gz")
        lines.append(f"{subject}\t{datasets[subject]}\t{subject}_flair.nii.gz\t{subject}_gold.nii.gz")
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n")
    return root / "manifest.tsv"


def test_slices_carry_their_scans_group_and_an_epoch_balances_them(tmp_path: Path) -> None:
    manifest = read_manifest(_cohort(tmp_path, {"p1": 4, "p2": 4, "r1": 1},
                                     {"p1": "phantom", "p2": "phantom", "r1": "real"}))
    stage = StageConfig(name="gold", labels="gold")
    sources = stage_label_sources(manifest, ["p1", "p2", "r1"], stage, "dataset")
    assert [s.group for s in sources] == ["phantom", "phantom", "real"]
    slices = load_slice_set(sources, DataConfig(pad_shape=SHAPE, patch_size=PATCH), "axial")
    np.testing.assert_array_equal(np.bincount(slices.groups), [8 * PATCH, PATCH])  # 8 phantom blocks, 1 real
    order = epoch_order(len(slices), np.random.default_rng(0), 64, slices.groups)
    np.testing.assert_array_equal(np.bincount(slices.groups[order]), [32, 32])


def test_a_missing_balance_column_names_it_and_the_fix(tmp_path: Path) -> None:
    manifest = read_manifest(_cohort(tmp_path, {"p1": 1}, {"p1": "phantom"}))
    with pytest.raises(InputError, match="'site'.*lacks") as error:
        stage_label_sources(manifest, ["p1"], StageConfig(name="gold", labels="gold"), "site")
    assert "data.balance_by" in str(error.value)


def test_config_reads_the_column_and_unset_keeps_the_config_hash(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"stages": [{"labels": "gold"}]}))
    assert load_config(path).data.balance_by is None
    assert "balance_by" not in load_config(path).identity()["data"]
    path.write_text(yaml.safe_dump({"data": {"balance_by": "dataset"}, "stages": [{"labels": "gold"}]}))
    assert load_config(path).identity()["data"]["balance_by"] == "dataset"
    path.write_text(yaml.safe_dump({"data": {"balance_by": 3}, "stages": [{"labels": "gold"}]}))
    with pytest.raises(ConfigError, match="balance_by"):
        load_config(path)
