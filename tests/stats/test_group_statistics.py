"""ANOVA, Holm-corrected pooled t-tests, OLS and the stats CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wmhkit.cli import main
from wmhkit.stats.confounders import confounder_ols
from wmhkit.stats.groups import compare_groups, one_way_anova, pairwise_ttests
from wmhkit.stats.tables import read_table, to_markdown, write_csv


def _tiny():
    return pd.DataFrame({"stage": ["CN"] * 3 + ["MCI"] * 3 + ["AD"] * 3,
                         "dice": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]})


def test_anova_by_hand():
    # group means 2, 5, 8; grand mean 5; SSB = 3·(9 + 0 + 9) = 54, df 2 → MSB 27; SSW = 3·2 = 6, df 6 → MSW 1.
    result = one_way_anova(_tiny()["dice"], _tiny()["stage"])
    assert result["f"] == pytest.approx(27.0, abs=1e-12)
    assert (result["df_between"], result["df_within"], result["groups"], result["n"]) == (2, 6, 3, 9)
    assert result["p"] == pytest.approx(stats.f.sf(27.0, 2, 6), rel=1e-12)


def test_anova_leaves_out_nan_and_empty_labels():
    table = _tiny()
    table.loc[9] = ["", 100.0]
    table.loc[10] = ["CN", np.nan]
    assert one_way_anova(table["dice"], table["stage"])["f"] == pytest.approx(27.0)
    assert one_way_anova(table["dice"][:3], table["stage"][:3]) is None  # one group only


def test_pooled_t_tests_by_hand_with_holm_correction():
    pairs = pairwise_ttests(_tiny()["dice"], _tiny()["stage"])
    assert list(zip(pairs["group_a"], pairs["group_b"])) == [("AD", "CN"), ("AD", "MCI"), ("CN", "MCI")]
    # CN vs MCI: means 2 and 5, pooled variance 1, t = −3 / sqrt(2/3)
    cn_mci = pairs.iloc[2]
    assert cn_mci["t"] == pytest.approx(-3 / np.sqrt(2 / 3), abs=1e-12)
    assert cn_mci["df"] == 4 and cn_mci["p"] == pytest.approx(2 * stats.t.sf(3 / np.sqrt(2 / 3), 4))
    # Holm: sort p ascending, multiply by m, m−1, ...; keep monotone; cap at 1.
    p = pairs["p"].to_numpy()
    order = np.argsort(p)
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.array([3, 2, 1])), 1.0)
    expected = np.empty(3)
    expected[order] = adjusted
    np.testing.assert_allclose(pairs["p_holm"], expected, rtol=1e-12)
    assert pairs.loc[0, "p_holm"] == pytest.approx(3 * pairs.loc[0, "p"])  # AD vs CN: smallest p, ×3


def test_compare_groups_runs_per_variant_and_gates_pair_tests():
    rng = np.random.default_rng(1)
    rows = []
    for variant, shift in (("m3sl", 0.0), ("unet", 0.0)):
        for stage, mean in (("CN", 0.8), ("MCI", 0.7), ("AD", 0.4 if variant == "m3sl" else 0.8)):
            for value in mean + shift + rng.normal(0, 0.02, 6):
                rows.append({"variant": variant, "stage": stage, "dice": value})
    anova, pairwise, skipped = compare_groups(pd.DataFrame(rows), by=["variant", "stage"], metrics=["dice"])
    assert skipped.empty
    assert anova["subset"].tolist() == ["all", "variant=m3sl", "variant=unet"]
    assert anova.loc[1, "significant"] and anova.loc[1, "f"] > 100
    assert set(pairwise["subset"]) <= {"all", "variant=m3sl", "variant=unet"}
    assert (pairwise["subset"] == "variant=m3sl").sum() == 3
    assert (pairwise["p_holm"] >= pairwise["p"]).all()


def test_ols_r2_and_coefficients_match_lstsq():
    rng = np.random.default_rng(2)
    n = 40
    table = pd.DataFrame({"vol_pred_ml": rng.gamma(2, 5, n), "vent_ml": rng.normal(30, 5, n),
                          "wm_ml": rng.normal(450, 30, n)})
    table["vol_gold_ml"] = 0.8 * table["vol_pred_ml"] + 0.2 * table["vent_ml"] + rng.normal(0, 1, n)
    result = confounder_ols(table, reference="vol_gold_ml", predicted="vol_pred_ml", covariates=["vent_ml", "wm_ml"])
    for model, terms in (("predicted", ["vol_pred_ml"]), ("predicted+covariates", ["vol_pred_ml", "vent_ml", "wm_ml"])):
        design = np.column_stack([np.ones(n), table[terms].to_numpy()])
        y = table["vol_gold_ml"].to_numpy()
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        r2 = 1 - np.sum((y - design @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
        fit = result[result["model"] == model]
        assert fit["term"].tolist() == ["intercept", *terms]
        np.testing.assert_allclose(fit["coef"], coef, rtol=1e-9)
        assert fit["r2"].iloc[0] == pytest.approx(r2, abs=1e-12)
    full = result[result["model"] == "predicted+covariates"].set_index("term")
    assert full.loc["vent_ml", "p"] < 1e-3 < full.loc["wm_ml", "p"]


def test_markdown_escapes_pipes_and_formats_floats():
    text = to_markdown(pd.DataFrame({"scanner": ["a|b"], "p": [0.000123456], "n": [3]}))
    assert text.splitlines()[2] == "| a\\|b | 0.0001235 | 3 |"


def test_csv_round_trip_undoes_the_formula_prefix(tmp_path):
    table = pd.DataFrame({"scanner": ["=x", "+y", "siemens"], "dice": [0.1, np.nan, 0.3]})
    write_csv(table, tmp_path / "t.csv")
    back = read_table(tmp_path / "t.csv", text_columns=("scanner",))
    assert back["scanner"].tolist() == ["=x", "+y", "siemens"]
    assert np.isnan(back.loc[1, "dice"]) and back.loc[2, "dice"] == 0.3


def test_cli_stats_writes_every_table(tmp_path):
    rng = np.random.default_rng(3)
    n = 24
    gold = rng.gamma(2, 5, n)
    table = pd.DataFrame({
        "subject": [f"s{i:02d}" for i in range(n)], "stage": np.repeat(["CN", "MCI", "AD"], 8),
        "scanner": np.tile(["1", "2"], 12), "dice": np.repeat([0.8, 0.7, 0.5], 8) + rng.normal(0, 0.03, n),
        "hd95_mm": rng.gamma(2, 2, n), "vol_gold_ml": gold, "vol_pred_ml": gold * 0.9 + rng.normal(0, 1, n),
        "vent_ml": rng.normal(30, 5, n),
    })
    write_csv(table, tmp_path / "metrics.csv")
    out = tmp_path / "stats"
    code = main(["stats", str(tmp_path / "metrics.csv"), "--by", "stage,scanner", "--metrics", "dice,hd95_mm",
                 "--volumes", "vol_gold_ml,vol_pred_ml", "--covariates", "vent_ml", "--out", str(out)])
    assert code == 0
    for name in ("anova", "pairwise", "agreement", "confounders"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.md").is_file()
    anova = pd.read_csv(out / "anova.csv")
    assert len(anova) == 4 and anova["significant"].iloc[0]
    assert json.loads((out / "anova.csv.json").read_text())["step"] == "stats"
    assert main(["stats", str(tmp_path / "metrics.csv"), "--by", "site", "--out", str(out)]) == 2


def test_comparisons_without_two_groups_are_reported_in_one_line(caplog):
    table = pd.DataFrame({"stage": ["CN"] * 6, "scanner": ["A"] * 3 + ["B"] * 3, "dice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                          "iou": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]})
    with caplog.at_level("INFO", logger="wmhkit.stats.groups"):
        anova, _, skipped = compare_groups(table, by=["stage", "scanner"], metrics=["dice", "iou"])
    assert sorted(anova["metric"]) == ["dice", "iou"]  # by scanner: two groups
    assert skipped["reason"].tolist() == ["fewer than two groups with 3 or more scans (CN: 6)"] * 2
    lines = [r.getMessage() for r in caplog.records if "not run" in r.getMessage()]
    assert lines == [("2 comparison(s) not run (too few scans per group, or no variation): dice by stage (all); "
                      "iou by stage (all)")]
    with caplog.at_level("INFO", logger="wmhkit.stats.groups"):
        compare_groups(table, by=["stage"], metrics=["dice", "iou", "dice", "iou"])
    assert caplog.records[-1].getMessage().endswith("dice by stage (all); iou by stage (all); dice by stage (all); ...")


def test_groups_of_one_or_two_scans_and_constant_values_are_not_tested():
    """A demo-sized table: groups of 1–2 scans are left out, all-zero scores are not compared."""
    table = pd.DataFrame({"variant": ["m3sl"] * 5 + ["baseline"] * 5, "stage": ["CN", "CN", "MCI", "AD", "AD"] * 2,
                          "dice": [0.5, 0.6, 0.4, 0.55, 0.7] + [0.0] * 5, "iou": [0.0] * 10})
    anova, _, skipped = compare_groups(table, by=["variant", "stage"], metrics=["dice", "iou"])
    assert anova[["metric", "grouping"]].values.tolist() == [["dice", "variant"]]
    reasons = dict(zip(skipped["metric"] + " " + skipped["subset"], skipped["reason"]))
    assert reasons["iou all"] == "every value is 0 (nothing to compare)"
    assert reasons["dice variant=m3sl"] == "fewer than two groups with 3 or more scans (AD: 2, CN: 2, MCI: 1)"
    # a third group of two scans is left out of a comparison that two larger groups make possible
    table = pd.DataFrame({"stage": ["CN"] * 3 + ["AD"] * 3 + ["MCI"] * 2, "dice": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 5, 5]})
    anova, _, skipped = compare_groups(table, by=["stage"], metrics=["dice"])
    assert anova.loc[0, "groups"] == 2 and anova.loc[0, "n"] == 6 and skipped.empty
