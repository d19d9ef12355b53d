"""Tell the admins when an outbound webhook endpoint was disabled (``messaging`` knows no accounts)."""

from __future__ import annotations

from sqlalchemy import select

from retreat.accounts.models import Role, User
from retreat.core import signals, urls
from retreat.extensions import db
from retreat.messaging import outbox


@signals.webhook_endpoint_disabled.connect(order=10)
def _email_admins(endpoint, *, now, reason: str) -> None:
    admins = db.session.scalars(select(User).where(User.role == Role.ADMIN.value, User.is_active_account.is_(True))
                                .order_by(User.id))
    day = now.strftime("%Y%m%d%H%M")
    for admin in admins:
        outbox.enqueue(template="webhook_disabled", dedupe_key=f"webhook-{endpoint.id}-disabled-{day}-u{admin.id}",
                       to_user=admin, now=now,
                       context={"endpoint_url": endpoint.url, "endpoint_description": endpoint.description or "",
                                "reason": reason,
                                "url": f"{urls.base_url()}/admin/webhooks/{endpoint.id}"})
