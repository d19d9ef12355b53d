"""The demo cohorts and the people in them, each walked through the rules (``demo_journeys``):

- Spring cohort (open, 12 seats, deposit before clearance): Alex and Blair cleared, consents
  signed, deposits paid (Alex has a ride home, Blair not yet; Blair pays the balance in three
  automatic installments from a 4242 card saved through localstripe); Casey the same with the
  healthcare-professional discount approved by finance; Devon and Emery waiting for the provider
  (Emery with a scholarship set by finance); Finley paying right now (seat held); Pat, the demo
  participant, cleared and paid the deposit, then chose three installments and paid the first.
- Early spring cohort (8 seats, deposit after clearance): eight paid, one of them withdrew (refunded
  by the refund schedule) so the first person waiting was offered the seat; others wait.
- Autumn cohort (ran two months ago): six people, from application to completion, at the times
  it happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from retreat.accounts import users as accounts
from retreat.accounts.models import ProviderOrganization, Role, User
from retreat.cli import demo_catalog as cat
from retreat.cli import demo_journeys as j
from retreat.cli.demo_base import TZ, staff
from retreat.cli.demo_journeys import new_request
from retreat.cli.demo_money import Payer, grant_scholarship, redeem_healthcare_code
from retreat.cohorts import catalog, enrollment
from retreat.cohorts.models import Cohort, CohortStatus, DepositTiming, Enrollment
from retreat.core.errors import Conflict
from retreat.payments import checkout
from retreat.payments.models import PaymentKind
from retreat.timeutil import zone

DEMO_PEOPLE = ["Alex Rivera", "Blair Chen", "Casey Morgan", "Devon Patel", "Emery Brooks", "Finley Okafor",
               "Gray Nakamura", "Harper Silva", "Indy Larsen", "Jordan Haddad", "Kai Moreau", "Logan Fischer",
               "Morgan Adeyemi", "Noor Rahman", "Oakley Byrne", "Parker Novak", "Quinn Avery", "Rowan Ellis"]
RIDE_HOME = ("Sam Rivera", "+1 303 555 0199")  # Alex's named driver
SCHOLARSHIP_PRICE_MINOR = 240000
SCHOLARSHIP_REASON = "Needs-based scholarship: half the price, agreed with the practice's scholarship fund."
HCP_EVIDENCE = "Colorado RN licence 0219876"


def guest(i: int, name: str, prefix: str = "guest") -> User:
    """A demo participant without a password (they cannot sign in; Pat can)."""
    email = f"{prefix}{i}@demo.retreat"
    return accounts.get_by_email(email) or accounts.create_user(
        email=email, name=name, role=Role.PARTICIPANT, password=None, tz=TZ, verified=True)


def seed_cohorts(org: ProviderOrganization, *, now: datetime, payer: Payer) -> None:
    admin, facilitator, provider, finance = staff("admin"), staff("facilitator"), staff("provider"), staff("finance")
    if None in (admin, facilitator, provider, finance):
        raise Conflict("The demo staff are missing: run the whole demo (flask seed-demo).")
    if cat.demo_retreat() is not None:
        return
    today = now.astimezone(zone(TZ)).date()
    made = now - timedelta(days=200)  # the retreat has been on the site since before the Autumn cohort
    retreat = cat.make_retreat(admin=admin, now=made)
    cat.publish_consents(admin=admin, now=made)
    people = [guest(i, name) for i, name in enumerate(DEMO_PEOPLE, start=1)]
    pat = staff("participant")

    past_first_day = today - timedelta(days=60)
    autumn = cat.make_cohort(retreat, cat.AUTUMN, past_first_day, capacity=8, org_id=org.id, facilitator=facilitator,
                             now=made)
    walk_past_cohort(autumn, people[:6], provider=provider, facilitator=facilitator, payer=payer)

    opened = now - timedelta(days=30)
    spring = cat.make_cohort(retreat, cat.SPRING, today + timedelta(days=75), capacity=12, org_id=org.id,
                             facilitator=facilitator, now=opened)
    early = cat.make_cohort(retreat, cat.EARLY_SPRING, today + timedelta(days=45), capacity=8, org_id=org.id,
                            facilitator=facilitator, now=opened, timing=DepositTiming.AFTER_CLEARANCE)
    seed_spring(spring, people[:6], pat, provider=provider, facilitator=facilitator, finance=finance, payer=payer,
                now=now)
    seed_early_spring(early, people[6:18], provider=provider, payer=payer, now=now)


def _ready(enr: Enrollment, provider: User, *, at: datetime, ride_home: tuple[str, str] | None = None,
           baseline: tuple[int, int] = (6, 5)) -> None:
    """Intake submitted, cleared by the provider a day later, consents signed and checklist done."""
    req = j.submit_intake(enr, at=at, phq9=baseline[0], gad7=baseline[1])
    j.clear(req, provider, at=at + timedelta(days=1))
    j.sign_consents(enr, at=at + timedelta(days=2))
    j.prepare(enr, at=at + timedelta(days=2), ride_home=ride_home)


def seed_spring(cohort: Cohort, people: list[User], pat: User | None, *, provider: User, facilitator: User,
                finance: User, payer: Payer, now: datetime) -> None:
    alex, blair, casey, devon, emery, finley = people
    t = now - timedelta(days=21)
    for i, person in enumerate((alex, blair, casey)):
        enr = j.apply(cohort, person, at=t + timedelta(hours=i), motivation="Looking forward to it.")
        if person is casey:
            redeem_healthcare_code(enr, evidence=HCP_EVIDENCE, approver=finance, at=t + timedelta(days=1))
        _ready(enr, provider, at=t + timedelta(days=1), ride_home=RIDE_HOME if person is alex else None)
        payer.pay(enr, PaymentKind.DEPOSIT, at=t + timedelta(days=4))
        if person is blair:  # on automatic installments: a saved 4242 card charged on each due date
            payer.save_card_for_installments(enr, 3, at=t + timedelta(days=4, hours=1))
        new_request()
        catalog.set_lodging(enr, lodging=f"Cabin {i + 1}", actor=facilitator, now=t + timedelta(days=5))
    for person in (devon, emery):  # with the provider: intake submitted, no decision yet
        enr = j.apply(cohort, person, at=t + timedelta(days=6), motivation="Curious and a little nervous.")
        j.submit_intake(enr, at=now - timedelta(days=2))
        if person is emery:
            grant_scholarship(enr, SCHOLARSHIP_PRICE_MINOR, reason=SCHOLARSHIP_REASON, by=finance,
                              at=now - timedelta(days=1))
    enr = j.apply(cohort, finley, at=now - timedelta(hours=3), motivation="")
    new_request()
    checkout.begin(enr, PaymentKind.DEPOSIT, now=now - timedelta(minutes=5), actor=finley)  # paying right now
    if pat is not None:
        enr = j.apply(cohort, pat, at=t + timedelta(days=7), motivation="Summer helped; I want to go deeper.")
        _ready(enr, provider, at=t + timedelta(days=7))
        payer.pay(enr, PaymentKind.DEPOSIT, at=t + timedelta(days=10))
        new_request()
        checkout.choose_plan(enr, 3, now=t + timedelta(days=10), actor=pat)
        payer.pay(enr, PaymentKind.INSTALLMENT, at=t + timedelta(days=11))
        new_request()
        catalog.set_lodging(enr, lodging="Cabin 4", actor=facilitator, now=t + timedelta(days=12))


def seed_early_spring(cohort: Cohort, people: list[User], *, provider: User, payer: Payer, now: datetime) -> None:
    """Twelve apply one after another; the first eight pay; whoever applies after that waits."""
    t = now - timedelta(days=28)
    paid = []
    for i, person in enumerate(people):
        at = t + timedelta(days=i)
        enr = j.apply(cohort, person, at=at)
        req = j.submit_intake(enr, at=at + timedelta(hours=2))
        j.clear(req, provider, at=at + timedelta(days=1))
        j.sign_consents(enr, at=at + timedelta(days=1, hours=1))
        if not enr.is_waitlisted:
            payer.pay(enr, PaymentKind.DEPOSIT, at=at + timedelta(days=1, hours=3))
            paid.append(enr)
    new_request()
    # The last one to pay has to withdraw: the refund schedule decides what comes back.
    enrollment.withdraw(paid[-1], now=now - timedelta(days=1), actor=paid[-1].participant,
                        reason="Had to withdraw for work")
    payer.settle_refunds(at=now - timedelta(days=1))


def walk_past_cohort(cohort: Cohort, people: list[User], *, provider: User, facilitator: User, payer: Payer,
                     baselines: dict[int, tuple[int, int]] | None = None) -> None:
    """A cohort that has run: each person applied, was cleared, paid the deposit and the balance,
    signed and prepared, attended and completed; then the facilitator closed the cohort.
    ``baselines``: PHQ-9 and GAD-7 totals of each person's intake, by user id."""
    start = cohort.starts_at
    for i, person in enumerate(people):
        at = start - timedelta(days=80 - i)
        enr = j.apply(cohort, person, at=at, motivation="")
        _ready(enr, provider, at=at + timedelta(hours=1), ride_home=(f"{person.name.split()[0]}'s partner", f"+1 303 555 01{i:02d}"),
               baseline=(baselines or {}).get(person.id, (9, 8)))
        payer.pay(enr, PaymentKind.DEPOSIT, at=at + timedelta(days=3))
        payer.pay(enr, PaymentKind.BALANCE, at=start - timedelta(days=35 - i))
        j.attend_and_complete(enr, attended_at=cohort.ends_at, completed_at=cohort.ends_at + timedelta(days=1),
                              by=facilitator)
    new_request()
    catalog.set_status(cohort, CohortStatus.COMPLETED.value, actor=facilitator, now=cohort.ends_at + timedelta(days=1))
