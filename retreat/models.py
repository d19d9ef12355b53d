"""All models, imported so that metadata is complete for Alembic and create_all."""

from retreat.accounts.calendar_feeds import CalendarFeed  # noqa: F401
from retreat.accounts.models import (  # noqa: F401
    STAFF_ROLES,
    ApiToken,
    ProviderLicense,
    ProviderOrganization,
    Role,
    SiteSetting,
    User,
)
from retreat.accounts.phone import PhoneNumber  # noqa: F401
from retreat.accounts.recovery_codes import TotpRecoveryCode  # noqa: F401
from retreat.accounts.sessions import UserSession  # noqa: F401
from retreat.accounts.signin_limits import SignInCounter  # noqa: F401
from retreat.audit.models import AuditEvent  # noqa: F401
from retreat.clinical.dosing_models import DosingAssignment, DosingEntry, DosingRecord, DosingSettings  # noqa: F401
from retreat.clinical.models import ClearanceRequest, InfoRequest, Intake, SafetyAlert  # noqa: F401
from retreat.clinical.outcome_models import OutcomeMeasure  # noqa: F401,E402
from retreat.cohorts import roster_versions  # noqa: F401  (what changes a roster)
from retreat.cohorts.models import (  # noqa: F401
    Attendance,
    ChecklistItem,
    Cohort,
    CohortSession,
    CohortStatus,
    ConsentDocument,
    ConsentSignature,
    Enrollment,
    EnrollmentParty,
    EnrollmentStatus,
    EnrollmentTransition,
    Retreat,
    RosterNote,
    SeatState,
)
from retreat.consults.models import (  # noqa: F401
    AvailabilityOverride,
    AvailabilityRule,
    Consultation,
    ConsultSettings,
    ConsultStatus,
    OverrideKind,
)
from retreat.core.cache_versions import CacheVersion  # noqa: F401
from retreat.core.job_runs import JobRun  # noqa: F401
from retreat.database import Base  # noqa: F401
from retreat.finance.payout_models import Payout, PayoutLine, PayoutLineKind  # noqa: F401,E402
from retreat.finance.reconciliation_models import ReconciliationItem, ReconciliationRun  # noqa: F401,E402
from retreat.integration.calendar_feed import CalendarTombstone  # noqa: F401,E402
from retreat.integration.followup_models import CheckInResponse, Discharge, FollowUp, IntegrationAlert  # noqa: F401,E402
from retreat.integration.journal_models import JournalEntry, JournalRealm  # noqa: F401,E402
from retreat.integration.models import CircleRsvp, IntegrationPlan, RsvpStatus  # noqa: F401,E402
from retreat.messaging.models import OutboxMessage, OutboxStatus  # noqa: F401
from retreat.messaging.sms_models import SmsMessage  # noqa: F401
from retreat.messaging.webhook_models import (  # noqa: F401
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from retreat.payments.autopay_models import AutopayAttempt, AutopayMandate  # noqa: F401
from retreat.payments.document_models import DocumentCounter, FinanceDocument  # noqa: F401
from retreat.payments.models import (  # noqa: F401
    DiscountCode,
    DiscountRedemption,
    Installment,
    LedgerEntry,
    Payment,
    PriceOverride,
    Refund,
    RefundRule,
    StripeEvent,
)
from retreat.privacy.models import DataExport, DeletionRequest, DeletionStatus  # noqa: F401
