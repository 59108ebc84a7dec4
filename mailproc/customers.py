"""Customer import and export between the customer_analytics CSV and the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from mailproc.core.customers_csv import ParsedCsv, RowError, format_customers_csv
from mailproc.core.model import Customer as CoreCustomer
from mailproc.store import repo
from mailproc.store.models import Customer, CustomerAddress


@dataclass
class Upserted:
    """What an upsert did; plan changes are (customer id, old plan, new plan)."""

    created: int = 0
    updated: int = 0
    kept: int = 0
    errors: list[RowError] = field(default_factory=list)
    plan_changes: list[tuple[int, str, str]] = field(default_factory=list)


def upsert_customers(
    session: Session,
    parsed: ParsedCsv,
    now: dt.datetime,
    *,
    insert_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Upserted:
    """Insert or update the parsed customers (with ``insert_only``, existing ones are kept);
    ``progress`` is told of each customer handled.

    A row whose address already belongs to another customer in the database is rejected
    (addresses identify senders, so one address has one owner).
    """
    result = Upserted(errors=list(parsed.errors))
    for customer in parsed.customers:
        if progress is not None:
            progress(1)
        line = parsed.lines.get(customer.id, 0)
        if insert_only and session.get(Customer, customer.id) is not None:
            result.kept += 1
            continue
        owners = dict(
            session.execute(
                select(CustomerAddress.address, CustomerAddress.customer_id).where(
                    CustomerAddress.address.in_(customer.emails)
                )
            ).all()
        )
        stolen = [a for a, owner in owners.items() if owner != customer.id]
        if stolen:
            result.errors.append(
                RowError(
                    line,
                    f"customer {customer.id}: address {stolen[0]} already belongs "
                    f"to customer {owners[stolen[0]]}",
                )
            )
            continue
        row = session.get(Customer, customer.id)
        if row is None:
            row = Customer(id=customer.id)
            session.add(row)
            result.created += 1
        else:
            result.updated += 1
            if row.plan != customer.plan.value:
                result.plan_changes.append((customer.id, row.plan, customer.plan.value))
        _copy(row, customer, now)
        session.flush()
        session.execute(delete(CustomerAddress).where(CustomerAddress.customer_id == customer.id))
        for position, address in enumerate(customer.emails):
            session.add(
                CustomerAddress(address=address, customer_id=customer.id, position=position)
            )
        session.flush()
        session.expire(row, ["addresses"])
    return result


def _copy(row: Customer, customer: CoreCustomer, now: dt.datetime) -> None:
    row.company = customer.company
    row.contact_name = customer.contact_name
    row.plan = customer.plan.value
    row.country = customer.country
    row.language = customer.language
    row.timezone = customer.timezone
    row.satisfaction_score = customer.satisfaction_score
    row.churn_risk = customer.churn_risk
    row.last_support_ticket = customer.last_support_ticket
    row.signup_date = customer.signup_date
    row.business_hours = customer.business_hours
    row.price_lock_until = customer.price_lock_until
    row.updated_at = now


def all_customers(session: Session) -> Sequence[CoreCustomer]:
    """Every customer in id order, as core values."""
    rows = session.scalars(
        select(Customer).options(selectinload(Customer.addresses)).order_by(Customer.id)
    ).all()
    return [repo.to_core_customer(row) for row in rows]


def export_customers_csv(session: Session) -> str:
    """The customers in the import format."""
    return format_customers_csv(all_customers(session))
