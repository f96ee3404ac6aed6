"""The bench's bare ceilings run under the app's process settings: a ceiling with another
garbage collector would not measure the same thing (bench/bare.py copies them by hand, to
stay free of the app's imports)."""

from __future__ import annotations

import re
from pathlib import Path

from ordergraph.web.app import GC_THRESHOLDS

BARE = Path(__file__).resolve().parents[2] / "bench" / "bare.py"


def test_the_bare_ceiling_collects_garbage_as_the_app_does() -> None:
    calls = re.findall(r"gc\.set_threshold\(([^)]*)\)", BARE.read_text())
    assert len(calls) == 1, calls
    assert tuple(int(part.replace("_", "")) for part in calls[0].split(",")) == GC_THRESHOLDS
