"""All models, imported so that metadata is complete for Alembic and create_all."""

from retreat.database import Base  # noqa: F401
from retreat.models.account_security import TotpRecoveryCode  # noqa: F401
from retreat.models.accounts import (  # noqa: F401
    STAFF_ROLES,
    ApiToken,
    ProviderLicense,
    ProviderOrganization,
    Role,
    SiteSetting,
    User,
)
from retreat.models.audit import AuditEvent  # noqa: F401
from retreat.models.cache_versions import CacheVersion  # noqa: F401
from retreat.models.clearance import ClearanceRequest, InfoRequest, Intake, SafetyAlert  # noqa: F401
from retreat.models.cohorts import (  # noqa: F401
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
from retreat.models.consults import (  # noqa: F401
    AvailabilityOverride,
    AvailabilityRule,
    Consultation,
    ConsultSettings,
    ConsultStatus,
    OverrideKind,
)
from retreat.models.followups import CheckInResponse, FollowUp, IntegrationAlert  # noqa: F401,E402
from retreat.models.integration import CircleRsvp, IntegrationPlan, RsvpStatus  # noqa: F401,E402
from retreat.models.journal import JournalEntry, JournalRealm  # noqa: F401,E402
from retreat.models.messaging import OutboxMessage, OutboxStatus  # noqa: F401
from retreat.models.outcomes import OutcomeMeasure  # noqa: F401,E402
from retreat.models.payments import (  # noqa: F401
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
from retreat.models.payouts import Payout, PayoutLine, PayoutLineKind  # noqa: F401,E402
from retreat.models.reconciliation import ReconciliationItem, ReconciliationRun  # noqa: F401,E402
