"""Versioned consent documents and typed-name e-signatures.

A document's text is stored with its SHA-256; a signature records the typed full name, the time,
the IP address and the hash of exactly the text signed. Publishing a new version of a kind makes
the older one stale: participants must sign the new version before the retreat.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from sqlalchemy import func, select, update

from retreat import audit
from retreat.accounts.models import User
from retreat.cohorts.models import ChecklistItem, ConsentDocument, ConsentSignature, Enrollment
from retreat.core.context import RequestContext
from retreat.core.errors import Conflict, NotFound, ValidationFailed
from retreat.extensions import db

_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,58}$")


def text_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _norm_name(name: str) -> str:
    return " ".join((name or "").split()).casefold()


def publish(*, kind: str, title: str, body: str, actor: User | None, now: datetime) -> ConsentDocument:
    kind = (kind or "").strip().lower()
    title = (title or "").strip()
    body = (body or "").replace("\r\n", "\n").strip()
    errors = {}
    if not _KIND_RE.match(kind):
        errors["kind"] = ["Use lower-case letters, digits and dashes (e.g. participation)."]
    if not title or len(title) > 200:
        errors["title"] = ["Give a title of at most 200 characters."]
    if len(body) < 20 or len(body) > 100_000:
        errors["body"] = ["The document text must be between 20 and 100,000 characters."]
    if errors:
        raise ValidationFailed("Check the document.", errors=errors)
    latest = db.session.scalar(select(func.max(ConsentDocument.version)).where(ConsentDocument.kind == kind)) or 0
    doc = ConsentDocument(kind=kind, version=latest + 1, title=title, body=body, sha256=text_hash(body),
                          is_active=True, published_by_id=actor.id if actor else None, created_at=now,
                          updated_at=now)
    db.session.add(doc)
    db.session.flush()
    # Nobody has signed the new version yet: re-open everyone's "sign your consents" item.
    db.session.execute(update(ChecklistItem).where(ChecklistItem.key == "consents",
                                                   ChecklistItem.completed_at.is_not(None))
                       .values(completed_at=None, updated_at=now).execution_options(synchronize_session="fetch"))
    audit.record("consent.published", actor=actor, object_type="consent_document", object_id=doc.id,
                 details={"kind": kind, "version": doc.version, "sha256": doc.sha256}, now=now)
    return doc


def current_documents() -> list[ConsentDocument]:
    """The newest version of each active kind."""
    latest = (select(ConsentDocument.kind, func.max(ConsentDocument.version).label("v"))
              .where(ConsentDocument.is_active.is_(True)).group_by(ConsentDocument.kind).subquery())
    return list(db.session.scalars(select(ConsentDocument).join(
        latest, (ConsentDocument.kind == latest.c.kind) & (ConsentDocument.version == latest.c.v))
        .order_by(ConsentDocument.kind)))


def signatures(enr: Enrollment) -> list[ConsentSignature]:
    return list(db.session.scalars(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id)
                                   .order_by(ConsentSignature.signed_at)))


def status(enr: Enrollment) -> list[dict]:
    """For each current document: signed (this version), needs re-signing (older one signed), or not yet."""
    sigs = signatures(enr)
    by_doc = {s.document_id: s for s in sigs}
    out = []
    for doc in current_documents():
        sig = by_doc.get(doc.id)
        older = any(s.document.kind == doc.kind and s.document.version < doc.version for s in sigs)
        state = "signed" if sig else ("resign" if older else "unsigned")
        out.append({"document": doc, "signature": sig, "state": state})
    return out


def all_signed(enr: Enrollment) -> bool:
    return all(row["state"] == "signed" for row in status(enr))


def all_signed_many(enrollment_ids: list[int]) -> dict[int, bool]:
    """``all_signed`` for many enrollments in two queries (rosters): each has signed every current document."""
    ids = list(enrollment_ids)
    if not ids:
        return {}
    current = {d.id for d in current_documents()}
    signed: dict[int, set[int]] = {i: set() for i in ids}
    for enr_id, doc_id in db.session.execute(select(ConsentSignature.enrollment_id, ConsentSignature.document_id)
                                             .where(ConsentSignature.enrollment_id.in_(ids))):
        signed[enr_id].add(doc_id)
    return {i: current <= signed[i] for i in ids}


def sign(enr: Enrollment, document: ConsentDocument, *, signer: User, typed_name: str, now: datetime,
         ctx: RequestContext | None = None) -> ConsentSignature:
    from retreat.cohorts import enrollment, preparation

    if signer.id != enr.participant_id:
        raise NotFound("No such enrollment.")
    if not enrollment.is_active(enr):
        raise Conflict("This application is closed.")
    if document.id not in {d.id for d in current_documents()}:
        raise Conflict("A newer version of this document exists; please read and sign that one.")
    typed = " ".join((typed_name or "").split())
    if not typed:
        raise ValidationFailed("Type your full name to sign.", field="typed_name")
    if len(typed) > 200:
        raise ValidationFailed("That name is too long.", field="typed_name")
    if _norm_name(typed) != _norm_name(signer.name):
        raise ValidationFailed(f"Type your full name exactly as on your account ({signer.name}).",
                               field="typed_name")
    existing = db.session.scalar(select(ConsentSignature).where(ConsentSignature.enrollment_id == enr.id,
                                                                ConsentSignature.document_id == document.id))
    if existing is not None:
        return existing
    sig = ConsentSignature(enrollment_id=enr.id, document_id=document.id, signer_id=signer.id, typed_name=typed,
                           signed_at=now, ip=ctx.ip if ctx else None, document_sha256=document.sha256)
    db.session.add(sig)
    db.session.flush()
    audit.record("consent.signed", actor=signer, object_type="consent_signature", object_id=sig.id, ctx=ctx,
                 details={"document": document.id, "version": document.version, "sha256": document.sha256},
                 now=now)
    preparation.refresh_consent_item(enr, now=now)
    return sig


def get_document(doc_id: int) -> ConsentDocument:
    doc = db.session.get(ConsentDocument, doc_id)
    if doc is None:
        raise NotFound("No such document.")
    return doc


def signed_copy(sig: ConsentSignature) -> str:
    """A plain-text signed copy for the participant to keep."""
    doc = sig.document
    intact = text_hash(doc.body) == sig.document_sha256
    return "\n".join([
        f"{doc.title} (version {doc.version})",
        "=" * 72,
        "",
        doc.body,
        "",
        "=" * 72,
        f"Signed electronically by typing the full name: {sig.typed_name}",
        f"Signed at (UTC): {sig.signed_at.strftime('%Y-%m-%d %H:%M:%S')}",
        f"From IP address: {sig.ip or 'unknown'}",
        f"SHA-256 of the document text signed: {sig.document_sha256}",
        f"Text unchanged since signing: {'yes' if intact else 'NO'}",
        "",
    ])
