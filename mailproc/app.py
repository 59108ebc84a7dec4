"""Composition of mailproc's parts for one configuration: the engine, the clock, the services."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock, SystemClock
from mailproc.config import ConfigError, Settings
from mailproc.core.addresses import normalize_address
from mailproc.core.assess import Assessment, assess
from mailproc.core.catalog import load_default_catalog
from mailproc.core.classify import Classifier, classifier_from_config
from mailproc.core.customers_csv import RowError, parse_customers_csv
from mailproc.core.detect import DetectPolicy
from mailproc.core.model import Customer
from mailproc.core.rawmail import not_mail_reason
from mailproc.core.sla import sla_policy_from_config
from mailproc.core.ticket_threading import ThreadPolicy
from mailproc.core.tokens import ReplyAddressScheme
from mailproc.core.understand import Prepared, PrepareRules, prepare
from mailproc.customers import export_customers_csv, upsert_customers
from mailproc.errors import NotFoundError, NotMailError
from mailproc.intake.sources import RawInput, in_history_order
from mailproc.intake.store import store_batch
from mailproc.kb.articles import seed_catalog
from mailproc.outbound.buildpool import BuildPool
from mailproc.outbound.render import Renderer
from mailproc.outbound.values import company_from
from mailproc.processing.budget import WriteBudget
from mailproc.processing.context import Outcome, ProcessingContext, ProcessSummary
from mailproc.processing.parsepool import ParsePool
from mailproc.processing.promote import promote
from mailproc.processing.replay import ReplayResult, ReplaySelection, replay, select_for_replay
from mailproc.processing.worker import Progress, process_pending
from mailproc.reports import rollup
from mailproc.reports.mailing import send_due_reports
from mailproc.store import migrate, repo
from mailproc.store.db import make_engine, make_session_factory, transaction
from mailproc.store.models import Customer as CustomerRow
from mailproc.tickets.ops import recompute_for_plan_change
from mailproc.workflows.context import CheckSummary
from mailproc.workflows.desk import Desk
from mailproc.workflows.mail import Notifier, locale_policy_from
from mailproc.workflows.staff import Staff

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What ``ingest`` stored, skipped as duplicate, flagged or rejected as not mail."""

    stored: int = 0
    duplicates: int = 0
    message_id_conflicts: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


@dataclass(frozen=True)
class ImportReport:
    """What a customer CSV import did."""

    created: int
    updated: int
    errors: tuple[RowError, ...]
    tickets_recomputed: int = 0
    kept: int = 0


class App:
    """One configured mailproc: opens the database and runs the use cases."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = make_engine(settings.database.url, settings.database.busy_timeout_ms)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self._context: ProcessingContext | None = None

    def close(self) -> None:
        """Stop parse and build workers and release database connections."""
        if self._context is not None and self._context.pool is not None:
            self._context.pool.close()
        if "build_pool" in self.__dict__:
            self.build_pool.close()
        self.engine.dispose()

    @cached_property
    def build_pool(self) -> BuildPool:
        """The deliverer's workers, started by the first round of more than one batch."""
        return BuildPool(self.settings.outbox.build_workers, company_from(self.settings))

    def upgrade_database(self) -> None:
        """Create or upgrade the schema to the newest revision; seed the knowledge base."""
        migrate.upgrade(self.engine)
        catalog = load_default_catalog().with_overrides(self.settings.catalog)
        with transaction(self.sessions) as session:
            seed_catalog(session, catalog, self.clock.now())

    def processing_context(self) -> ProcessingContext:
        """The worker's view of the settings (built once per App)."""
        if self._context is None:
            settings = self.settings
            scheme = self.reply_scheme()
            sla = sla_policy_from_config(settings.sla)
            notifier = self.notifier(scheme)
            rules = PrepareRules(
                limits=settings.intake.limits(),
                detection=DetectPolicy(
                    own_addresses=frozenset(settings.support.addresses),
                    message_id_domains=frozenset({self.message_id_domain()}),
                    reply_scheme=scheme,
                    spam_rules=settings.filtering.spam_rules(),
                    bulk_rules=settings.filtering.bulk_rules(),
                ),
                classifier=self.classifier(),
            )
            self._context = ProcessingContext(
                rules=rules,
                support_addresses=frozenset(settings.support.addresses),
                staff=self.staff,
                threading=ThreadPolicy(
                    reply_scheme=scheme,
                    reopen_window=dt.timedelta(days=settings.threading.reopen_window_days),
                ),
                sla=sla,
                clock=self.clock,
                notifier=notifier if settings.processing.followups else None,
                desk=Desk(notifier, sla) if settings.processing.followups else None,
                pool=ParsePool(settings.processing.parse_workers, rules),
            )
        return self._context

    def classifier(self) -> Classifier:
        """The priority rules and the error-code catalog, with the config's overrides."""
        catalog = load_default_catalog().with_overrides(self.settings.catalog)
        return classifier_from_config(catalog, self.settings.classify)

    def notifier(self, scheme: ReplyAddressScheme) -> Notifier:
        """Outbound ticket mail: templates, languages, recipients by role."""
        settings = self.settings
        return Notifier(
            settings,
            Renderer(company_from(settings)),
            scheme,
            self.message_id_domain(),
            load_default_catalog().with_overrides(settings.catalog),
            locale_policy_from(settings),
            self.staff,
        )

    @cached_property
    def staff(self) -> Staff:
        """The agents: configured and stored, read now and again at each batch."""
        staff = Staff(self.settings)
        with transaction(self.sessions, commit=False) as session:
            staff.refresh(session)
        return staff

    def message_id_domain(self) -> str:
        """The domain of our outbound Message-IDs (never one our agents' mail clients use)."""
        settings = self.settings
        return settings.threading.message_id_domain or f"mailproc.{settings.support.domain}"

    def reply_scheme(self) -> ReplyAddressScheme:
        """Reply addresses ``support+<ticket>-<token>@domain`` and the secrets that sign them.

        Without configured secrets, one is generated on first use and kept in the database,
        so that every process and host shares it.
        """
        threading = self.settings.threading
        secrets = tuple(s.encode() for s in threading.reply_token_secrets)
        if not secrets:
            with transaction(self.sessions) as session:
                secrets = (repo.shared_secret(session, "reply_token", self.clock.now()).encode(),)
        return ReplyAddressScheme(
            local_part=threading.reply_local_part,
            domain=threading.reply_domain or self.settings.support.domain,
            secrets=secrets,
        )

    def ingest(
        self,
        inputs: Iterable[RawInput],
        progress: Progress | None = None,
        *,
        processing_follows: bool = False,
        history: bool = False,
    ) -> IngestReport:
        """Store raw messages durably in batches; each batch is committed before it counts.

        When processing follows and the input is more than a handful of messages, the parse
        workers start while the mail is stored (a single piped message never starts them).
        ``history`` stores old mail with its own time (core/history.py), oldest first within
        the run (``in_history_order``: the worker claims in id order, so a reply is processed
        after the mail it answers), marked so that it never causes mail.
        """
        report = IngestReport()
        batch: list[RawInput] = []
        for item in in_history_order(inputs, self.clock.now()) if history else inputs:
            if item.error is not None:
                report.rejected.append(
                    (item.envelope.source_ref or item.envelope.source, item.error)
                )
                continue
            batch.append(item)
            pool = self.processing_context().pool if processing_follows else None
            if pool is not None and len(batch) == ParsePool.min_jobs:
                pool.warm()
            if len(batch) >= self.settings.intake.batch_size:
                self._store(batch, report, progress)
                batch = []
        if batch:
            self._store(batch, report, progress)
        return report

    def _store(
        self, batch: list[RawInput], report: IngestReport, progress: Progress | None
    ) -> None:
        with transaction(self.sessions) as session:
            results = store_batch(
                session, [(item.raw, item.envelope) for item in batch], self.clock.now()
            )
        report.stored += sum(1 for r in results if not r.duplicate)
        report.duplicates += sum(1 for r in results if r.duplicate)
        report.message_id_conflicts += sum(1 for r in results if r.message_id_conflict)
        if progress is not None:
            progress(len(batch))

    def process(
        self,
        progress: Progress | None = None,
        *,
        before_batch: Callable[[], None] | None = None,
        batch_size: int | None = None,
        budget: WriteBudget | None = None,
    ) -> ProcessSummary:
        """Process every pending message (``before_batch`` runs before each transaction;
        ``batch_size`` overrides the setting; ``budget`` bounds each transaction by time)."""
        return process_pending(
            self.sessions,
            self.processing_context(),
            batch_size=batch_size or self.settings.processing.batch_size,
            progress=progress,
            before_batch=before_batch,
            budget=budget,
        )

    def promote(self, inbound_id: int) -> Outcome:
        """Turn a stored bulk or spam message into a person's mail (and a ticket)."""
        with transaction(self.sessions) as session:
            return promote(session, inbound_id, self.processing_context(), self.clock.now())

    def replay_ids(self, selection: ReplaySelection) -> list[int]:
        """The inbound ids a replay selection names."""
        with transaction(self.sessions, commit=False) as session:
            return select_for_replay(session, selection)

    def replay(
        self, inbound_ids: list[int], *, dry_run: bool, progress: Progress | None = None
    ) -> list[ReplayResult]:
        """Re-run processing for the given stored messages."""
        return replay(
            self.sessions,
            self.processing_context(),
            inbound_ids,
            dry_run=dry_run,
            batch_size=self.settings.processing.batch_size,
            progress=progress,
        )

    def assess_message(
        self, raw: bytes, customer_id: int | None, received_at: dt.datetime
    ) -> tuple[Prepared, Customer | None, Assessment]:
        """Classify a raw message and compute its due times without storing anything."""
        reason = not_mail_reason(raw)
        if reason is not None:
            raise NotMailError(f"not mail: {reason}")
        context = self.processing_context()
        prepared = prepare(raw, context.rules, None)
        sender = prepared.parsed.sender
        with transaction(self.sessions, commit=False) as session:
            if customer_id is not None:
                row = session.get(CustomerRow, customer_id)
                if row is None:
                    raise NotFoundError(f"no customer {customer_id}")
            else:
                row = repo.customer_by_address(
                    session, normalize_address(sender.addr) if sender else None
                )
            customer = repo.to_core_customer(row) if row is not None else None
        classification = prepared.classification or context.rules.classifier.classify(
            prepared.parsed.subject, prepared.new_text
        )
        assessment = assess(classification, customer, received_at, context.sla)
        return prepared, customer, assessment

    def workflows(self) -> Desk:
        """The procedures' workflows, sharing the worker's notifier and SLA policy."""
        context = self.processing_context()
        if context.notifier is None:
            raise ConfigError(
                "follow-ups are off ([processing] followups = false): "
                "there are no SLA notices, escalations, surveys or incidents to handle"
            )
        return Desk(context.notifier, context.sla)

    def check(self, now: dt.datetime, *, dry_run: bool) -> CheckSummary:
        """The breach notifier and scheduler tick: breaches, timers, surveys, incidents and
        the scheduled report mails (and, on PostgreSQL, the report's hourly roll-up).

        Safe to run from cron on several hosts at once: every mail and credit has a unique
        key, and timers and surveys are claimed with row locks.
        """
        desk = self.workflows()
        with transaction(self.sessions, commit=not dry_run) as session:
            self.staff.refresh(session)
            summary = desk.check(session, now, dry_run=dry_run)
            if not dry_run:
                rollup.refresh(session, now)  # PostgreSQL: the report's hourly roll-up
            send_due_reports(
                session,
                self.settings,
                desk.context.notifier.role_recipients,
                self.message_id_domain(),
                now,
                dry_run=dry_run,
                lines=summary.reports,
            )
        return summary

    def import_customers(
        self,
        text: str,
        *,
        insert_only: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Upsert customers from customer_analytics CSV text (``insert_only``: keep existing;
        ``progress`` counts the customers handled)."""
        parsed = parse_customers_csv(text)
        now = self.clock.now()
        policy = self.processing_context().sla
        with transaction(self.sessions) as session:
            result = upsert_customers(
                session, parsed, now, insert_only=insert_only, progress=progress
            )
            recomputed = sum(
                recompute_for_plan_change(session, customer_id, old, new, policy, now)
                for customer_id, old, new in result.plan_changes
            )
        return ImportReport(
            result.created,
            result.updated,
            tuple(sorted(result.errors, key=lambda e: e.line)),
            recomputed,
            result.kept,
        )

    def export_customers(self) -> str:
        """Every customer in the import format."""
        with transaction(self.sessions, commit=False) as session:
            return export_customers_csv(session)
