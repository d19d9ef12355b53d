"""Reading a page's links and forms as a browser would (for the crawl and the form fuzz)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # as the browser would send them
    kinds: dict[str, str] = field(default_factory=dict)  # name -> input type / select / textarea
    enctype: str = ""


class _Parser(HTMLParser):
    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base, self.links, self.forms = base, [], []
        self._form: Form | None = None
        self._select: tuple[str, list[str], str | None] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.base, a["href"]))
        elif tag == "form":
            self._form = Form(urljoin(self.base, a.get("action") or self.base), (a.get("method") or "get").lower(),
                              enctype=a.get("enctype", ""))
            self.forms.append(self._form)
        elif self._form is None or "disabled" in a:
            return
        elif tag in ("input", "button") and a.get("name"):
            kind = a.get("type", "text" if tag == "input" else "submit").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            self._form.kinds.setdefault(a["name"], kind)
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form.fields.append((a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "select" and a.get("name"):
            self._select = (a["name"], [], None)
            self._form.kinds.setdefault(a["name"], "select")
        elif tag == "option" and self._select is not None:
            name, values, chosen = self._select
            values.append(a.get("value", ""))
            self._select = (name, values, a.get("value", "") if "selected" in a else chosen)
        elif tag == "textarea" and a.get("name"):
            self._textarea = (a["name"], [])
            self._form.kinds.setdefault(a["name"], "textarea")

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            name, values, chosen = self._select
            if values:
                self._form.fields.append((name, chosen if chosen is not None else values[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form.fields.append((self._textarea[0], "".join(self._textarea[1]).lstrip("\n")))
            self._textarea = None


def parse(html: str, base: str) -> tuple[list[str], list[Form]]:
    p = _Parser(base)
    p.feed(html)
    return p.links, p.forms


def same_site_path(url: str) -> str | None:
    """The path and query of a link on this site (http://localhost), without its fragment."""
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "") or parts.netloc not in ("localhost", ""):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")
