"""The practice's legal details printed on receipts, credit notes and statements.

Set by admins at ``/admin/settings/legal`` and kept as one site setting (JSON). Every document
copies them when it is issued (``FinanceDocument.legal_*``), so a change applies to documents
issued afterwards only; statements, which are not numbered documents, show the current ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from retreat.accounts import users
from retreat.accounts.models import User
from retreat.core.context import RequestContext
from retreat.core.errors import ValidationFailed

KEY = "practice_legal_details"
# One definition of each limit: the form and the document columns read these.
MAX_NAME, MAX_ADDRESS, MAX_ADDRESS_LINES, MAX_TAX_ID, MAX_FOOTER = 200, 500, 6, 60, 500


@dataclass(frozen=True)
class LegalDetails:
    legal_name: str = ""
    address: str = ""  # several lines, "\n" between them
    tax_id: str = ""
    footer: str = ""

    @property
    def is_set(self) -> bool:
        return bool(self.legal_name and self.address)

    @property
    def address_lines(self) -> list[str]:
        return [line for line in self.address.split("\n") if line]


def current() -> LegalDetails:
    raw = users.get_setting(KEY)
    if not raw:
        return LegalDetails()
    try:
        data = json.loads(raw)
    except ValueError:
        return LegalDetails()
    if not isinstance(data, dict):
        return LegalDetails()
    return LegalDetails(**{k: str(data.get(k) or "") for k in ("legal_name", "address", "tax_id", "footer")})


def _clean(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def validate(*, legal_name: str | None, address: str | None, tax_id: str | None,
             footer: str | None) -> LegalDetails:
    """The details, stripped, or ``ValidationFailed`` naming the first wrong field."""
    name, tax, foot = _clean(legal_name), _clean(tax_id), _clean(footer)
    lines = [" ".join(line.split()) for line in _clean(address).split("\n")]
    lines = [line for line in lines if line]
    addr = "\n".join(lines)
    for value, field, label in ((name, "legal_name", "Legal name"), (addr, "address", "Address"),
                                (tax, "tax_id", "Tax id"), (foot, "footer", "Invoice footer")):
        if "\x00" in value:
            raise ValidationFailed(f"{label} contains a character that is not allowed.", field=field)
    if not name:
        raise ValidationFailed("Legal name is required.", field="legal_name")
    if len(name) > MAX_NAME or "\n" in name:
        raise ValidationFailed(f"Legal name must be one line of at most {MAX_NAME} characters.", field="legal_name")
    if not addr:
        raise ValidationFailed("Address is required.", field="address")
    if len(addr) > MAX_ADDRESS or len(lines) > MAX_ADDRESS_LINES:
        raise ValidationFailed(f"Address must be at most {MAX_ADDRESS_LINES} lines and {MAX_ADDRESS} characters.",
                               field="address")
    if len(tax) > MAX_TAX_ID or "\n" in tax:
        raise ValidationFailed(f"Tax id must be one line of at most {MAX_TAX_ID} characters.", field="tax_id")
    if len(foot) > MAX_FOOTER:
        raise ValidationFailed(f"Invoice footer must be at most {MAX_FOOTER} characters.", field="footer")
    return LegalDetails(legal_name=name, address=addr, tax_id=tax, footer=foot)


def save(value: LegalDetails, *, actor: User, ctx: RequestContext | None = None) -> None:
    """Store validated details; audited (``setting.changed``) when they change."""
    users.set_setting(KEY, json.dumps(asdict(value), ensure_ascii=False, sort_keys=True), actor=actor, ctx=ctx)
