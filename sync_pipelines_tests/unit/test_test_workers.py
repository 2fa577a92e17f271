"""The suite's own set-up: `make test` runs two test processes with `--dist loadgroup`, and a module whose tests
share one server (`end_to_end/test_dagster_dev.py`: one `dagster dev`) keeps them on one worker with
`xdist_group`. pytest 9.2 with pytest-xdist 3.8 ignores the mark without a word (pytest-xdist#1386): the module's
tests were then spread over both workers, each starting its own `dagster dev` and stopping it between tests."""

import re
import subprocess
import sys
from pathlib import Path

GROUPED = 6


def test_the_tests_of_an_xdist_group_run_on_one_worker(tmp_path: Path):
    (tmp_path / "test_grouped.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.xdist_group('server')\n"
        f"@pytest.mark.parametrize('i', range({GROUPED}))\n"
        "def test_grouped(i):\n"
        "    pass\n"
    )
    (tmp_path / "test_free.py").write_text(
        f"import pytest\n@pytest.mark.parametrize('i', range({GROUPED}))\ndef test_free(i):\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # none of the project's options
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    workers = set(re.findall(r"\[(gw\d+)\] .*PASSED test_grouped\.py::test_grouped", result.stdout))
    ran = len(re.findall(r"PASSED test_grouped\.py::test_grouped", result.stdout))
    assert ran == GROUPED and len(workers) == 1, result.stdout[-3000:]
