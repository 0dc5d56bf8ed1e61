"""Benchmarks need their timings: under ``--benchmark-disable`` (pytest-benchmark's way to keep them out of a
quick run) pytest-benchmark runs each body once and keeps no statistics, so the ratio checks here would have
nothing to compare. Skip them instead, saying why."""

import pytest


@pytest.fixture(autouse=True)
def _skip_when_benchmarks_are_disabled(request):
    if "benchmark" in request.fixturenames and request.getfixturevalue("benchmark").disabled:
        pytest.skip("benchmarks disabled (--benchmark-disable): their ratios need timings")
