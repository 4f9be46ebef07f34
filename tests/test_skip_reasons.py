"""Tests that need the real data say where they looked when they skip (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REASON = re.compile(r"""reason\s*=\s*f?["']([^"']*)["']""")


def test_real_data_skips_name_the_folder_they_did_not_find():
    vague = []
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "shared" not in text or "real" not in text:
            continue
        for reason in REASON.findall(text):
            if re.search(r"real|data", reason, re.IGNORECASE) and not re.fullmatch(
                r"\.\./shared/data/real(/[\w.-]+)* not found", reason
            ):
                vague.append(f"{path.relative_to(TESTS)}: {reason!r}")
    assert vague == []
