"""Generated pages are in sync with the code; the Grafana dashboard names only real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flaskstack import readme
from flaskstack.settings import SETTINGS

from .conftest import DOCS, ROOT, markdown_pages

STALE = "run `.venv/bin/python -m flaskstack.readme` from the repository's root"


def test_every_generated_block_is_in_sync() -> None:
    made = readme.make_all()
    assert {"settings", "exit-codes", "commands", "metrics", "rendered-config",
            "notes-settings", "notes-api"} <= set(made)
    where: dict[str, list[str]] = {name: [] for name in made}
    for page in markdown_pages():
        content = page.read_text()
        assert readme.update(content, made) == content, f"{page} is stale: {STALE}"
        for name in readme.found_blocks(content):
            where.setdefault(name, []).append(str(page.relative_to(ROOT)))
    assert all(where.values()), f"blocks on no page: {[n for n, w in where.items() if not w]}"


def test_every_setting_has_its_own_anchor_in_the_reference() -> None:
    page = (DOCS / "reference" / "settings.md").read_text()
    for s in SETTINGS:
        assert f"### `{s.name}`\n" in page
        assert f"`{s.flag}` · `{s.env}` · default: {s.describe_default()}" in page


def test_the_regenerate_command_fills_every_block(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "docs" / "x").mkdir(parents=True)
    block = "<!-- generated:exit-codes -->\nold\n<!-- /generated:exit-codes -->\n"
    (tmp_path / "README.md").write_text("# r\n\n" + block)
    (tmp_path / "docs" / "x" / "page.md").write_text("# p\n\n" + block.replace("old", ""))
    (tmp_path / "docs" / "x" / "other.md").write_text(
        "<!-- generated:not-installed -->\nkept\n<!-- /generated:not-installed -->\n")
    monkeypatch.chdir(tmp_path)
    assert readme.main([]) == 0
    table = readme.exits.markdown_table()
    assert table in (tmp_path / "README.md").read_text()
    assert table in (tmp_path / "docs" / "x" / "page.md").read_text()
    assert "kept" in (tmp_path / "docs" / "x" / "other.md").read_text()
    (tmp_path / "README.md").write_text("# r\n\n" + block)
    monkeypatch.chdir("/")
    assert readme.main([str(tmp_path / "README.md")]) == 0  # the old calling form
    assert table in (tmp_path / "README.md").read_text()
    assert readme.main([]) == 2  # no docs/ folder here: one line, nothing written


def exported_samples() -> set[str]:
    names = set()
    for family in readme.exported_metrics():
        for sample in family.samples:
            names.add(sample.name)
    return names


def test_the_grafana_dashboard_loads_and_names_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "operating" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) > 10
    used = {m for e in exprs for m in re.findall(r"\bflaskstack_[a-z_]+", e)}
    exported = exported_samples()
    assert used - exported == set(), f"not exported by the kit: {used - exported}"
    families = {f.name for f in readme.exported_metrics()}
    shown = {re.sub(r"_total$", "", m) for m in used}
    assert families - shown == set(), f"metrics the dashboard does not show: {families - shown}"
    labels = {lab for e in exprs for lab in re.findall(r"\bby \(([a-z_]+)\)", e)}
    assert labels <= {"instance", "job", "state", "worker", "cache", "service"}
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))


def test_the_metrics_page_links_the_dashboard() -> None:
    page = (DOCS / "operating" / "metrics.md").read_text()
    assert "{download}`grafana-dashboard.json`" in page
