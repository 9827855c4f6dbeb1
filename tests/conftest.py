"""Shared fixtures. With PYLOADER_REQUIRE_ALL=1 (CI's ``tox -e all``) a skipped test fails instead."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # helpers.py importable by spawned worker processes too

from helpers import write_id_chunks  # noqa: E402

REQUIRE_ALL = os.environ.get("PYLOADER_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under PYLOADER_REQUIRE_ALL=1 (CI must run everything): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole test module skipped at import (``importorskip``) must fail under REQUIRE_ALL too."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under PYLOADER_REQUIRE_ALL=1 (CI must run everything): {report.longrepr}"


@pytest.fixture
def id_chunks(tmp_path):
    """Seven JSON-lines chunks of 13..19 samples with unique ids 0..111."""
    return write_id_chunks(tmp_path / "data", [13 + c for c in range(7)])
