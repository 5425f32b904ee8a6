"""``make test`` ends by naming the real-component tests it skipped and ``make deps``."""

from __future__ import annotations

import os

import pytest

from tests.helpers.processes import REPO

pytest_plugins = ["pytester"]


def test_the_summary_names_skipped_components_and_make_deps(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(REPO), path))))
    pytester.makeconftest(
        "from tests.conftest import pytest_terminal_summary, pytest_unconfigure  # noqa: F401"
    )
    pytester.makepyfile(
        """
        import pytest

        def test_rules():
            pytest.skip("promtool not found: apt-get install -y prometheus (it ships promtool)")

        def test_page():
            pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")

        def test_other():
            pytest.skip("SciFact not found")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=3)
    last = result.outlines[-1]
    assert last.startswith(
        "real-component tests skipped (chromium 1, prometheus 1): run `make deps`"
    )
