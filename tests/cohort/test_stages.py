"""prepare and predict over a cohort: byte-identical with 1 or 2 workers, poison scans isolated."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wmhkit.cli import main
from wmhkit.infer.predict import predict_scans
from wmhkit.preprocess.pipeline import prepare_manifest
from wmhkit.io.manifest import read_manifest
from wmhkit.stats.tables import read_table

POISONS = ("truncated", "nan", "four_d", "empty_mask")


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (crash files hold worker-specific tracebacks: left out)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parent.name != "crashes"}


def test_prepare_with_poison_scans_is_byte_identical_in_process_and_on_two_workers(tmp_path, write_cohort):
    manifest = write_cohort(tmp_path / "data", 3, poisons=POISONS)
    one, two = tmp_path / "one", tmp_path / "two"
    code = main(["prepare", str(manifest), "--out", str(one), "--no-n4", "--no-qc-png"])
    assert code == 1  # poison scans fail the command, after the good ones are done
    result = prepare_manifest(manifest, two, options=read_options(), workers=2, memory_limit="2GiB")
    assert sorted(result.scans) == ["sub-01", "sub-02", "sub-03"]
    failures = pd.read_csv(one / "failures.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert failures["subject"].tolist() == ["poison-truncated", "poison-nan", "poison-fourd", "poison-emptymask"]
    errors = dict(zip(failures["subject"], failures["error"]))
    assert "flair.nii.gz" in errors["poison-truncated"]
    assert "constant" in errors["poison-nan"]
    assert "(24, 28, 18, 2)" in errors["poison-fourd"] and "one 3D volume" in errors["poison-fourd"]
    assert "brain mask is empty" in errors["poison-emptymask"]
    for subject in errors:
        assert "Traceback" in (one / "crashes" / f"{subject}.txt").read_text()
        assert (two / "crashes" / f"{subject}.txt").is_file()
    assert read_manifest(one / "manifest.tsv").table["subject"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert _files(one) == _files(two)
    assert len(list((one / "records" / "prepare").glob("*.json"))) == 3  # poison scans leave no record


def read_options():
    from wmhkit.preprocess.pipeline import PrepareOptions

    return PrepareOptions(n4=False, qc_png=False)


def test_predict_is_byte_identical_in_process_and_on_a_dask_scheduler(tmp_path, write_cohort, tiny_model,
                                                                       dask_scheduler):
    manifest = write_cohort(tmp_path / "data", 2, poisons=("truncated",))
    in_process = predict_scans(tiny_model, [manifest], tmp_path / "one")
    on_dask = predict_scans(tiny_model, [manifest], tmp_path / "two", scheduler=dask_scheduler)
    assert [f.subject for f in in_process.failures] == [f.subject for f in on_dask.failures] == ["poison-truncated"]
    assert sorted(on_dask.outputs) == ["sub-01", "sub-02"]
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    volumes = read_table(on_dask.volumes, text_columns=("subject",))
    assert volumes["subject"].tolist() == ["sub-01", "sub-02"]
    assert (volumes["icv_ml"] > 0).all()


def test_prepare_with_n4_is_byte_identical_whatever_the_itk_threads_per_worker(tmp_path, write_cohort):
    from wmhkit.preprocess.pipeline import PrepareOptions

    manifest = write_cohort(tmp_path / "data", 2)
    options = PrepareOptions(n4=True, qc_png=False)
    prepare_manifest(manifest, tmp_path / "one", options=options, threads_per_worker=1)
    prepare_manifest(manifest, tmp_path / "three", options=options, threads_per_worker=3)
    assert _files(tmp_path / "one") == _files(tmp_path / "three")


def _staple_on_random_raters() -> tuple[bytes, bytes]:
    import gc

    import numpy as np

    from wmhkit.fusion.staple import staple

    rng = np.random.default_rng(0)
    truth = rng.random((40, 40, 40)) < 0.05
    raters = [truth ^ (rng.random(truth.shape) < rate) for rate in (0.01, 0.02, 0.05)]
    result = staple(raters, np.ones(truth.shape, bool))
    gc.collect()
    np.ones(10**7)  # reuse freed memory: a view of a collected image would change here
    return result.probability.tobytes(), result.mask.tobytes()


def test_staple_gives_the_same_maps_on_a_dask_worker(dask_scheduler):
    from distributed import Client

    in_process = _staple_on_random_raters()
    with Client(dask_scheduler) as client:
        on_worker = client.submit(_staple_on_random_raters, pure=False).result()
    assert on_worker == in_process
    assert any(in_process[1])  # the consensus marks lesion voxels
