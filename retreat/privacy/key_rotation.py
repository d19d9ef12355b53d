"""Key rotation: every encrypted column, re-encrypted under the newest of ``CLINICAL_DATA_KEYS``.

``flask keys rotate`` runs it. The list of columns is also what the "no plaintext at rest" tests
walk, so a new encrypted column belongs here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from retreat.accounts.phone import PhoneNumber
from retreat.clinical.models import ClearanceRequest, InfoRequest, Intake
from retreat.clinical.outcome_models import OutcomeMeasure
from retreat.cohorts.models import ChecklistItem, Enrollment
from retreat.consults.models import Consultation
from retreat.core.crypto import rotate_field
from retreat.extensions import db
from retreat.integration.followup_models import CheckInResponse
from retreat.integration.journal_models import JournalEntry
from retreat.messaging.models import OutboxMessage
from retreat.messaging.sms_models import SmsMessage
from retreat.payments.models import DiscountRedemption
from retreat.privacy.models import DeletionRequest

# Every encrypted column, for key rotation and for the "no plaintext at rest" tests.
ENCRYPTED_COLUMNS = (
    (Intake, "answers_enc"),
    (Intake, "screening_enc"),
    (ClearanceRequest, "conditions_enc"),
    (ClearanceRequest, "rationale_enc"),
    (ClearanceRequest, "participant_note_enc"),
    (InfoRequest, "body_enc"),
    (Consultation, "reason_encrypted"),
    (Consultation, "answers_encrypted"),
    (Consultation, "outcome_notes_encrypted"),
    (OutcomeMeasure, "answers_enc"),
    (JournalEntry, "text_enc"),
    (CheckInResponse, "answers_enc"),
    (OutboxMessage, "private_enc"),  # capability links of unsent messages
    (ChecklistItem, "answer_enc"),  # dietary needs, emergency contact (personal, not clinical)
    (Enrollment, "motivation_enc"),
    (DiscountRedemption, "evidence_enc"),
    (DeletionRequest, "reason_enc"),
    (PhoneNumber, "number_enc"),  # SMS opt-in (personal, not clinical)
    (PhoneNumber, "pending_enc"),
    (SmsMessage, "to_number_enc"),
    (SmsMessage, "private_enc"),  # verification codes of unsent texts
)





def rotate_keys(*, batch_size: int = 500, on_batch: Callable[[], None] | None = None) -> dict[str, int]:
    """Re-encrypt every clinical column under the newest key (the first of CLINICAL_DATA_KEYS).

    Nothing is decrypted for display; ``on_batch`` (e.g. a commit) runs after each batch.
    Returns how many values were re-encrypted per column.
    """
    counts: dict[str, int] = {}
    for model, column_name in ENCRYPTED_COLUMNS:
        column = getattr(model, column_name)
        table = model.__table__
        last_id = 0
        done = 0
        while True:
            rows = db.session.execute(select(model.id, column).where(model.id > last_id, column.is_not(None))
                                      .order_by(model.id).limit(batch_size)).all()
            if not rows:
                break
            for row_id, token in rows:
                db.session.execute(update(table).where(table.c.id == row_id)
                                   .values({column_name: rotate_field(token)}))
                last_id = row_id
                done += 1
            if on_batch is not None:
                on_batch()
        counts[f"{table.name}.{column_name}"] = done
    return counts
