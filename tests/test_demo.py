"""The demo: ``--quick`` writes a complete, self-contained report whose figures are real PNGs."""

import re
import struct

import pytest

from skarchetype import __version__
from skarchetype.cli import main
from skarchetype.demo._report import Report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """Width and height from a PNG's header chunk (IHDR), which must come first."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert header[12:16] == b"IHDR", f"{path.name} has no PNG header chunk"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(folder), "--quick", "--device", "cpu"]) == 0
    return folder / "index.html"


@pytest.fixture(scope="module")
def page(report):
    return report.read_text(encoding="utf-8")


def test_the_demo_writes_an_html_page(page):
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")


def test_every_linked_figure_is_a_non_empty_png(report, page):
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources, "the report shows no figures"
    for source in sources:
        width, height = png_size(report.parent / source)
        assert width > 0 and height > 0


def test_every_figure_has_a_caption(page):
    assert page.count("<img ") == page.count("<figcaption>")


def test_the_report_tells_both_stories(page):
    assert "Archetypes of a" in page
    assert "Latent responses" in page


def test_the_report_shows_its_measurements_and_version(page):
    assert page.count("<table>") >= 3
    assert "NMI" in page and "CDS" in page
    assert __version__ in page


def test_the_report_needs_nothing_from_the_network(page):
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page


def test_the_report_writer_escapes_text(tmp_path):
    writer = Report(tmp_path, title="a <b> title")
    writer.section("x & y")
    writer.paragraph("<script>alert(1)</script>")
    writer.table(["name", "value"], [["<i>", 0.12345]], caption="c")
    page = writer.write(meta="m").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &lt;b&gt; title" in page and "0.123</td>" in page
