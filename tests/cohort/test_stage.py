"""The stage skeleton: a toy stage gets records, skips, crash files and failures.tsv from run_stage alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wmhkit.cohort.failures import ErrorReport
from wmhkit.cohort.records import expected_record
from wmhkit.cohort.runner import ComputeOptions
from wmhkit.cohort.stage import ScanStage, StageScan, run_stage


@dataclass(frozen=True)
class WordJob:
    out_dir: Path
    scan_id: str
    word: str


class UpperStage(ScanStage[WordJob, str]):
    """Writes the word in capitals; ``bad`` raises, a word with a digit fails in part (no record)."""

    step = "upper"
    with_method = True
    label = "all"

    def expected(self, job: WordJob, record: Path) -> dict:
        return expected_record(record, step=self.step, inputs={}, parameters={"word": job.word})

    def compute(self, job: WordJob) -> tuple[str, list[Path] | None, dict]:
        if job.word == "bad":
            raise ValueError("a bad word")
        path = job.out_dir / f"{job.scan_id}.txt"
        path.write_text(job.word.upper())
        return job.word.upper(), None if any(c.isdigit() for c in job.word) else [path], {"upper": job.word.upper()}

    def restore(self, job: WordJob, stored: dict) -> str:
        return "stored " + stored["upper"]

    def errors(self, result: str) -> dict[str, ErrorReport]:
        return {"digits": ErrorReport("has digits", "trace")} if any(c.isdigit() for c in result) else {}


def _run(out: Path, words: dict[str, str]) -> tuple[list, list]:
    scans = [StageScan(key, key, "", WordJob(out, key, word)) for key, word in words.items()]
    scans.append(StageScan.build("s-unmade", "s-unmade", "", lambda: int("x")))
    return run_stage(UpperStage(), scans, out, ComputeOptions(), lambda outcomes: [o.value for o in outcomes])


def test_a_toy_stage_gets_records_skips_crash_files_and_failures(tmp_path):
    values, failures = _run(tmp_path, {"s-a": "ab", "s-bad": "bad", "s-2": "a2"})
    assert values == ["AB", None, "A2", None]
    assert [(f.subject, f.method, f.error) for f in failures] == [
        ("s-bad", "all", "a bad word"), ("s-2", "digits", "has digits"),
        ("s-unmade", "all", "invalid literal for int() with base 10: 'x'"),
    ]
    assert (tmp_path / "failures.tsv").read_text().splitlines()[0] == "subject\tsession\tmethod\terror"
    assert (tmp_path / "crashes" / "s-bad.txt").read_text().startswith("== all ==\nTraceback")
    assert sorted(p.name for p in (tmp_path / "records" / "upper").iterdir()) == ["s-a.json"]
    (tmp_path / "crashes" / "s-bad.txt").touch()
    values, failures = _run(tmp_path, {"s-a": "ab", "s-bad": "fixed", "s-2": "a2"})
    assert values == ["stored AB", "FIXED", "A2", None]  # s-a from its record; s-2 (no record) recomputed
    assert not (tmp_path / "crashes" / "s-bad.txt").exists() and len(failures) == 2
    values, _ = _run(tmp_path, {"s-a": "changed", "s-bad": "fixed", "s-2": "a2"})
    assert values[:2] == ["CHANGED", "stored FIXED"]  # another parameter: the record no longer matches
