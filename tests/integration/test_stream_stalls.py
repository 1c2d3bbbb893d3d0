"""The concurrent-stream stall test, small: every paced stream through the gateway completes.

``loadtests/bench_streams.py`` runs the same code at up to 1,024 streams and reports stalls and
gap quantiles (docs/performance.md). Here only completeness is asserted: no stream is lost or
cut, and each carries every chunk; the timings depend on the machine, so they are not checked.
"""

from __future__ import annotations

import pytest

from router.testing.stream_stalls import gateway_on_paced_mock, run_streams, summarise

pytestmark = pytest.mark.integration

STREAMS = 32
TOKENS = 20


@pytest.mark.timeout(300)
async def test_32_paced_streams_all_complete_with_every_chunk() -> None:
    with gateway_on_paced_mock(TOKENS, tokens_per_s=20.0, workers=1) as url:
        results = await run_streams(url, "paced", STREAMS, stall_ms=500.0, timeout_s=120.0)
    report = summarise(results, TOKENS, 500.0)
    assert [r.error for r in results if r.error] == []
    assert report["completed"] == STREAMS, report
    assert report["chunks_per_stream"] == [TOKENS]
