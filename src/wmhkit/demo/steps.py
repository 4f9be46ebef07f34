"""Resumable demo steps: each step writes into its own folder and, when it has finished, an atomic marker.

A marker ``OUT/steps/<NN>-<name>.json`` holds the step's name, the demo
settings it ran with, its wall time and a small JSON result (counts, failures,
paths). A rerun of the demo skips every step whose marker exists and records no
failed scan. A step that was interrupted (no marker) or had failures runs again,
and so does every step after it; the stages it calls skip the work they already
finished (per-scan completion records of prepare, bronze, silver and predict;
training resumes from its checkpoints).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmhkit.errors import OutputError
from wmhkit.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

STEPS_FOLDER = "steps"
#: ``progress(description, done, total)``: the demo reports its steps and training batches through it.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class StepRecord:
    """What a finished step left: name, wall seconds, result, and whether this run skipped it."""

    name: str
    seconds: float
    result: dict[str, Any]
    skipped: bool


@dataclass
class StepRunner:
    """Runs the demo's steps in order, skipping those with a marker.

    Attributes
    ----------
    out_dir
        The demo folder (markers go to ``out_dir/steps/``).
    settings
        The demo settings (JSON-ready); a marker made with other settings is an error.
    total
        Number of steps of the run (for progress).
    progress
        Optional callback ``(description, done, total)``.
    records
        The steps run or skipped so far, in order.
    """

    out_dir: Path
    settings: Mapping[str, Any]
    total: int
    progress: Progress | None = None
    records: list[StepRecord] = field(default_factory=list)

    def marker(self, name: str) -> Path:
        """``OUT/steps/<NN>-<name>.json`` of the next step."""
        return self.out_dir / STEPS_FOLDER / f"{len(self.records) + 1:02d}-{name}.json"

    def run(self, name: str, description: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run ``action`` (returning a JSON-ready result) unless the step's marker exists; return the result.

        Raises
        ------
        OutputError
            When the marker was written by a demo with other settings.
        """
        marker = self.marker(name)
        number = len(self.records) + 1
        self._report(f"step {number}/{self.total}: {description}", number - 1)
        if marker.is_file():
            record = json.loads(marker.read_text(encoding="utf-8"))
            if record.get("settings") != dict(self.settings):
                raise OutputError(f"{marker} was written by a demo with other settings; "
                                  "choose a new --out or delete the folder")
            rerun = record["result"].get("failures") or any(not step.skipped for step in self.records)
            if not rerun:
                log.info("demo step %d/%d %s: already done (%s), skipped", number, self.total, name, marker)
                self.records.append(StepRecord(name, float(record["seconds"]), record["result"], skipped=True))
                return record["result"]
            marker.unlink()
        log.info("demo step %d/%d: %s", number, self.total, description)
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
        record = {"step": name, "description": description, "settings": dict(self.settings),
                  "seconds": round(seconds, 3), "result": result}
        write_text_atomic(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
        log.info("demo step %d/%d %s: done in %.1f s", number, self.total, name, seconds)
        self.records.append(StepRecord(name, seconds, result, skipped=False))
        self._report(f"step {number}/{self.total}: {description}", number)
        return result

    def _report(self, description: str, done: int) -> None:
        if self.progress is not None:
            self.progress(f"demo {description}", done, self.total)
