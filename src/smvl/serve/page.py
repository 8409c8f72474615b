"""The web page and its Content-Security-Policy.

The policy lets only the page's own inline script and style run (by hash, so an injected <script> or a style
attribute would not), lets it talk only to this server, show only data: images, and be framed by no other site.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

PAGE = Path(__file__).with_name("page.html")


def _hashes(html: str, tag: str) -> str:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    if len(bodies) != html.count(f"<{tag}"):  # an element with attributes would be blocked without a word
        raise ValueError(f"page.html: every <{tag}> must be written without attributes")
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)


def load_page() -> tuple[str, dict[str, str]]:
    """The page's HTML and the headers to send with it."""
    html = PAGE.read_text(encoding="utf-8")
    policy = ["default-src 'none'", f"script-src {_hashes(html, 'script')}", f"style-src {_hashes(html, 'style')}",
              "img-src data:", "connect-src 'self'", "base-uri 'none'", "form-action 'none'",
              "frame-ancestors 'none'"]
    return html, {"Content-Security-Policy": "; ".join(policy), "Referrer-Policy": "no-referrer"}
