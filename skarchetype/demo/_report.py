"""A self-contained HTML report: headings, text, small tables and PNG figures beside it.

The page needs nothing from the network (no fonts, scripts or styles to fetch): open
``index.html`` from disk. Every text is HTML-escaped; figures are written as PNG files
next to the page and linked by relative path, so the folder can be moved or zipped.
"""

from __future__ import annotations

import html
import numbers
import re
from collections.abc import Sequence
from pathlib import Path

from .._io import atomic_output

_STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #222; max-width: 1040px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.95em; }
figure { margin: 1.4em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.4em; }
table { border-collapse: collapse; margin: 0 0 1.4em; font-size: 0.92em; }
p.caption { color: #444; font-size: 0.92em; margin: 1.4em 0 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


class Report:
    """An HTML page under construction in ``folder``; :meth:`write` saves ``index.html``.

    Parameters
    ----------
    folder : path-like
        Where the page and its figures go; created if missing.
    title : str
        The page's title and top heading.
    """

    def __init__(self, folder, title: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.figures: list[Path] = []
        self._contents: list[tuple[str, str]] = []
        self._blocks: list[str] = []

    def section(self, title: str) -> None:
        """Start a section, listed in the table of contents."""
        anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self._contents.append((anchor, title))
        self._blocks.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def subsection(self, title: str) -> None:
        self._blocks.append(f"<h3>{html.escape(title)}</h3>")

    def paragraph(self, text: str) -> None:
        self._blocks.append(f"<p>{html.escape(text)}</p>")

    def figure(self, figure, name: str, caption: str) -> Path:
        """Save a matplotlib figure as ``name.png`` beside the page, close it, and show it."""
        import matplotlib.pyplot as plt

        path = self.folder / f"{name}.png"
        with atomic_output(path) as handle:
            figure.savefig(handle, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        self.figures.append(path)
        self._blocks.append(
            f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return path

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence], caption: str, decimals: int = 3
    ) -> None:
        """A small table with its caption above; floats are shown with ``decimals`` decimals."""
        head = "".join(f"<th>{html.escape(str(column))}</th>" for column in columns)
        body = "".join(
            "<tr>" + "".join(_cell(value, decimals) for value in row) + "</tr>"
            for row in rows
        )
        self._blocks.append(
            f'<p class="caption">{html.escape(caption)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def write(self, meta: str) -> Path:
        """Save the page as ``index.html`` (atomically) and return its path.

        ``meta`` is a one-line summary shown under the title (versions, device, time).
        """
        contents = "".join(
            f'<li><a href="#{anchor}">{html.escape(title)}</a></li>'
            for anchor, title in self._contents
        )
        page = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class=\"meta\">{html.escape(meta)}</p>"
            f"<nav><ol>{contents}</ol></nav>" + "\n".join(self._blocks) + "</body></html>\n"
        )
        path = self.folder / "index.html"
        with atomic_output(path) as handle:
            handle.write(page.encode("utf-8"))
        return path


def _cell(value, decimals: int) -> str:
    """A table cell: numbers right-aligned (floats rounded to ``decimals``), text left-aligned."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f'<td class="number">{value:.{decimals}f}</td>'
    if isinstance(value, numbers.Integral):
        return f'<td class="number">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"
