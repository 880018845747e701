"""The docs build with Sphinx, warnings as errors: a broken link fails the suite."""

import shutil
import subprocess
import sys

from tests.conftest import REPO


def build(source, out):
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going",
         "-q", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_docs_build_without_warnings(tmp_path):
    result = build(REPO / "docs", tmp_path / "html")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "html" / "how-to" / "run-the-daemon.html").read_text()
    assert "LabClient" in page


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    with (docs / "how-to" / "write-a-plan.md").open("a") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    result = build(docs, tmp_path / "html")
    assert result.returncode != 0
    assert "write-a-plan.md" in result.stderr and "no-such-page" in result.stderr
