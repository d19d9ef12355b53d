"""Admin: outbound webhook endpoints, their delivery log, test events and redelivery."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from retreat.blueprints.admin import bp
from retreat.blueprints.admin.common import button, submit
from retreat.blueprints.admin.forms import ActionForm, WebhookEndpointForm
from retreat.core.errors import NotFound
from retreat.extensions import db
from retreat.messaging import webhooks
from retreat.messaging.webhook_models import WebhookDelivery
from retreat.web.hooks import no_store
from retreat.web.security import acting_user, request_context


def _load(endpoint_id: int):
    try:
        return webhooks.get_endpoint(endpoint_id)
    except NotFound:
        abort(404)


@bp.get("/webhooks")
def webhooks_list():
    return render_template("admin/webhooks.html", endpoints=webhooks.live_endpoints(),
                           event_types=webhooks.EVENT_TYPES)


@bp.route("/webhooks/new", methods=["GET", "POST"])
@no_store  # the answer shows the signing secret
def webhook_new():
    form = WebhookEndpointForm()
    ok, created = submit(form, lambda: webhooks.create_endpoint(
        url=form.url.data, events=list(form.events.data or []), description=form.description.data or "",
        actor=acting_user(), ctx=request_context()))
    if ok:
        endpoint, secret = created
        return render_template("admin/webhook_created.html", endpoint=endpoint, secret=secret)
    return render_template("admin/webhook_new.html", form=form), (422 if form.errors else 200)


@bp.get("/webhooks/<int:endpoint_id>")
def webhook_detail(endpoint_id: int):
    ep = _load(endpoint_id)
    return render_template("admin/webhook_detail.html", endpoint=ep, deliveries=webhooks.deliveries(ep.id),
                           action_form=ActionForm(formdata=None))


@bp.get("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>")
def webhook_delivery(endpoint_id: int, delivery_id: int):
    ep = _load(endpoint_id)
    d = db.session.get(WebhookDelivery, delivery_id)
    if d is None or d.endpoint_id != ep.id:
        abort(404)
    return render_template("admin/webhook_delivery.html", endpoint=ep, delivery=d,
                           attempts=webhooks.attempts(d.id), body=webhooks.body_of(d.event).decode(),
                           action_form=ActionForm(formdata=None))


@bp.post("/webhooks/<int:endpoint_id>/test")
def webhook_test(endpoint_id: int):
    ep = _load(endpoint_id)
    return button(lambda _: webhooks.send_test(ep.id, actor=acting_user(), ctx=request_context()),
                  done="A test event is on its way; its delivery appears below within a few seconds.",
                  back=url_for("admin.webhook_detail", endpoint_id=ep.id))


@bp.post("/webhooks/<int:endpoint_id>/enabled")
def webhook_enabled(endpoint_id: int):
    ep = _load(endpoint_id)

    def toggle(value: str):
        if value == "1":
            return webhooks.enable_endpoint(ep.id, actor=acting_user(), ctx=request_context())
        return webhooks.disable_endpoint(ep.id, reason="Turned off by an admin", actor=acting_user(),
                                         ctx=request_context())

    return button(toggle, done="Saved: the endpoint's status.", back=url_for("admin.webhook_detail", endpoint_id=ep.id))


@bp.post("/webhooks/<int:endpoint_id>/delete")
def webhook_delete(endpoint_id: int):
    ep = _load(endpoint_id)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    webhooks.delete_endpoint(ep.id, actor=acting_user(), ctx=request_context())
    flash(f"Deleted: {ep.url}. Nothing more is sent to it.", "success")
    return redirect(url_for("admin.webhooks_list"))


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
def webhook_redeliver(endpoint_id: int, delivery_id: int):
    ep = _load(endpoint_id)
    d = db.session.get(WebhookDelivery, delivery_id)
    if d is None or d.endpoint_id != ep.id:
        abort(404)
    return button(lambda _: webhooks.redeliver(d.id, actor=acting_user(), ctx=request_context()),
                  done="Queued again: the same event (same id) is sent within a few seconds.",
                  back=url_for("admin.webhook_detail", endpoint_id=ep.id))
