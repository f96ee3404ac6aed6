"""README "Configuration" names every variable Settings reads, and "Operating it" every
metric the app exports (one registry, read here as the scrape would)."""

from __future__ import annotations

import re
from pathlib import Path

from ordergraph.adapters.metrics import REGISTRY
from tests.unit.test_deployment import names_the_settings_read

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def section(heading: str) -> str:
    return README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_every_setting_is_in_the_configuration_table() -> None:
    table = section("## Configuration")
    assert sorted(name for name in names_the_settings_read()
                  if f"`{name}`" not in table) == []


def test_every_metric_of_ours_is_in_the_operating_section() -> None:
    operating = section("## Operating it")
    ours = {family.name for family in REGISTRY.collect() if family.name.startswith("ordergraph_")}
    documented = set(re.findall(r"ordergraph_[a-z_]+", operating))

    # A counter's family is named without its _total.
    missing = {m for m in ours if not {m, f"{m}_total"} & documented}
    # The live hub's are listed by their shared prefix ("..._outages_total").
    assert missing <= {"ordergraph_live_hub_outages", "ordergraph_live_hub_reconnects"}
    assert "`..._outages_total`, `..._reconnects_total`" in operating
