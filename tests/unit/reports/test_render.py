"""The views of the hand-built ledger: table, CSV, JSON and HTML agree with the aggregates."""

from __future__ import annotations

import csv
import io
import re

import orjson
import pytest

from router.cli.report import render
from router.reports.aggregate import aggregate
from router.reports.charts import nice_max
from router.reports.render_html import render_html
from router.reports.render_text import render_csv, render_json, render_table
from tests.unit.reports.ledger_fixture import ledger, rec

CHARTS = {"spend-by-team", "savings", "tier-share", "cache-hit-rate", "latency"}


def test_csv_rows_and_total() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(aggregate(ledger(), by=("team",))))))
    assert [r["team"] for r in rows] == ["a", "b", "-", "(total)"]
    total = rows[-1]
    assert float(total["spend_usd"]) == pytest.approx(0.23)
    assert float(total["counterfactual_usd"]) == pytest.approx(0.46)
    assert float(total["tier_local_share"]) == pytest.approx(0.6)
    assert total["latency_p95_ms"] == "280.0"
    assert rows[0]["cache_hit_rate"] == "0.0"


def test_json_is_the_report() -> None:
    doc = orjson.loads(render_json(aggregate(ledger(), by=("model",))))
    assert doc["totals"]["spend_usd"] == pytest.approx(0.23)
    assert {g["key"]["model"] for g in doc["groups"]} == {"mock-local", "mock-hosted"}
    assert doc["by"] == ["model"]


def test_table_has_groups_and_total() -> None:
    text = render_table(aggregate(ledger(), by=("team",)), width=220)
    assert "(total)" in text
    assert "$0.2300" in text and "$0.4600" in text
    assert "280.0 ms" in text
    assert "local 60%" in text


def test_table_says_what_was_unmetered_and_reclaimed() -> None:
    # Issue #20: the report says how much was served unmetered (fail_open, Redis down) and shows
    # reclaimed holds of dead replicas apart.
    plain = render_table(aggregate(ledger()), width=220)
    assert "unmetered" not in plain and "Reclaimed" not in plain
    rows = [
        *ledger(),
        rec(request_id="u1", cost_usd=0.04, unmetered=True),
        rec(request_id="x1", cost_usd=0.05, error="reclaimed", status=0, tier=None),
    ]
    text = render_table(aggregate(rows), width=220)
    assert "Served unmetered (Redis unreachable, fail_open): $0.0400" in text
    assert "Reclaimed holds of dead replicas: $0.0500 in 1 rows" in text


def test_html_is_self_contained_with_five_charts() -> None:
    html = render_html(aggregate(ledger(), by=("team",)))
    found = set(re.findall(r'data-chart="([a-z-]+)"', html))
    assert found == CHARTS
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from anywhere
    assert html.count('class="mark"') >= 10


def test_html_escapes_ledger_text() -> None:
    evil = "<script>alert(1)</script>"
    html = render_html(aggregate([rec(team=evil, cost_usd=1.0, counterfactual_usd=2.0)], ("team",)))
    assert evil not in html
    assert "&lt;script&gt;" in html


def test_empty_report_renders_every_format() -> None:
    empty = aggregate([])
    for fmt in ("table", "csv", "json", "html"):
        assert render(empty, fmt)
    assert "No data in this range" in render_html(empty)


def test_nice_max() -> None:
    assert nice_max(0.23) == pytest.approx(0.25)
    assert nice_max(7) == pytest.approx(10)
    assert nice_max(100) == pytest.approx(100)
    assert nice_max(0) == 1.0
