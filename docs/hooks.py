# SPDX-License-Identifier: MIT
"""MkDocs hooks: the API pages list the public ops from the engine's own table.

A line ``<!-- matgrad: ops of the elementwise family, ... -->`` becomes one
``::: matgrad.<name>`` per public op of that family, in the engine's order
(``matgrad._core._entry_points()``), so a new op appears in the reference without editing a page.
"""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"^<!-- matgrad: ops of the (\w+) family\b.*-->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if "<!-- matgrad: ops" not in markdown:
        return markdown
    from matgrad import _core

    entries = _core._entry_points()

    def expand(m: re.Match[str]) -> str:
        names = [e["name"] for e in entries if e["family"] == m.group(1)]
        if not names:
            raise ValueError(f"docs: no public op of family {m.group(1)!r}")
        return "\n".join(f"::: matgrad.{n}" for n in names)

    return _MARKER.sub(expand, markdown)
