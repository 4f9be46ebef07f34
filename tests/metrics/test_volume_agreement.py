"""ICC(2,1) against pingouin, Bland–Altman and Pearson by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wmhkit.metrics.volume import bland_altman, icc_2_1, pearson


def test_icc_2_1_matches_pingouin_icc2():
    pingouin = pytest.importorskip("pingouin")
    rng = np.random.default_rng(0)
    gold = rng.gamma(2.0, 5.0, 25)
    pred = 0.9 * gold + 1.5 + rng.normal(0, 2.0, 25)
    long = pd.DataFrame({"subject": np.tile(np.arange(25), 2), "rater": np.repeat(["gold", "pred"], 25),
                         "volume": np.concatenate([gold, pred])})
    reference = pingouin.intraclass_corr(long, targets="subject", raters="rater", ratings="volume")
    row = reference.set_index("Type").loc["ICC(A,1)"]  # "ICC2" in pingouin < 0.6
    result = icc_2_1(gold, pred)
    assert result.icc == pytest.approx(row["ICC"], abs=1e-9)
    assert result.f == pytest.approx(row["F"], rel=1e-9)
    assert result.p == pytest.approx(row["pval"], rel=1e-6, abs=1e-300)
    assert (result.df1, result.df2, result.n) == (24, 24, 25)
    # pingouin rounds its interval to 2 decimals
    assert [result.ci_low, result.ci_high] == pytest.approx(list(row["CI95"]), abs=0.005 + 1e-12)
    assert result.ci_low < result.icc < result.ci_high


def test_icc_penalises_a_constant_offset_absolute_agreement():
    gold = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert icc_2_1(gold, gold + 0.0001 * np.arange(5)).icc == pytest.approx(1.0, abs=1e-4)
    # ICC(A,1) drops when a rater adds a constant; a consistency ICC would not.
    assert icc_2_1(gold, gold + 5.0).icc < 0.8


def test_icc_drops_incomplete_pairs_and_needs_three():
    assert icc_2_1([1, 2, np.nan, 4, 5], [1.1, 2.2, 3, 3.9, 5.3]).n == 4
    with pytest.raises(ValueError, match="at least 3"):
        icc_2_1([1.0, np.nan], [1.0, 2.0])


def test_bland_altman_by_hand():
    reference = np.array([10.0, 20.0, 30.0, 40.0])
    predicted = np.array([12.0, 19.0, 33.0, 42.0])  # differences 2, -1, 3, 2
    result = bland_altman(reference, predicted)
    sd = np.sqrt(((2 - 1.5) ** 2 + (-1 - 1.5) ** 2 + (3 - 1.5) ** 2 + (2 - 1.5) ** 2) / 3)
    assert result.mean_difference == pytest.approx(1.5)
    assert result.sd_difference == pytest.approx(sd)
    assert (result.loa_low, result.loa_high) == pytest.approx((1.5 - 1.96 * sd, 1.5 + 1.96 * sd))


def test_pearson_matches_its_definition():
    a = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    b = np.array([1.5, 1.9, 3.5, 4.0, 9.0])
    r, p = pearson(a, b)
    expected = np.sum((a - a.mean()) * (b - b.mean())) / np.sqrt(np.sum((a - a.mean()) ** 2) * np.sum((b - b.mean()) ** 2))
    assert r == pytest.approx(expected, abs=1e-12)
    t = expected * np.sqrt(3 / (1 - expected**2))
    assert p == pytest.approx(2 * stats.t.sf(t, 3), rel=1e-9)
