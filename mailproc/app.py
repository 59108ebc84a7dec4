"""Composition of mailproc's parts for one configuration: the engine, the clock, the services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock, SystemClock
from mailproc.config import Settings
from mailproc.core.customers_csv import RowError, parse_customers_csv
from mailproc.customers import export_customers_csv, upsert_customers
from mailproc.intake import store_batch
from mailproc.processing import (
    ProcessingContext,
    ProcessSummary,
    Progress,
    ReplayResult,
    ReplaySelection,
    process_pending,
    replay,
    select_for_replay,
)
from mailproc.sources import RawInput
from mailproc.store import migrate
from mailproc.store.db import make_engine, make_session_factory, transaction


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


class App:
    """One configured mailproc: opens the database and runs the use cases."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = make_engine(settings.database.url, settings.database.busy_timeout_ms)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def upgrade_database(self) -> None:
        """Create or upgrade the schema to the newest revision."""
        migrate.upgrade(self.engine)

    def processing_context(self) -> ProcessingContext:
        """The worker's view of the settings."""
        return ProcessingContext(
            limits=self.settings.intake.limits(),
            support_addresses=frozenset(self.settings.support.addresses),
            clock=self.clock,
        )

    def ingest(self, inputs: Iterable[RawInput], progress: Progress | None = None) -> IngestReport:
        """Store raw messages durably in batches; each batch is committed before it counts."""
        report = IngestReport()
        batch: list[RawInput] = []
        for item in inputs:
            if item.error is not None:
                report.rejected.append(
                    (item.envelope.source_ref or item.envelope.source, item.error)
                )
                continue
            batch.append(item)
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

    def process(self, progress: Progress | None = None) -> ProcessSummary:
        """Process every pending message."""
        return process_pending(
            self.sessions,
            self.processing_context(),
            batch_size=self.settings.processing.batch_size,
            progress=progress,
        )

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

    def import_customers(self, text: str) -> ImportReport:
        """Upsert customers from customer_analytics CSV text."""
        parsed = parse_customers_csv(text)
        with transaction(self.sessions) as session:
            created, updated, errors = upsert_customers(session, parsed, self.clock.now())
        return ImportReport(created, updated, tuple(sorted(errors, key=lambda e: e.line)))

    def export_customers(self) -> str:
        """Every customer in the import format."""
        with transaction(self.sessions, commit=False) as session:
            return export_customers_csv(session)

    def now(self) -> dt.datetime:
        """The app clock's current time."""
        return self.clock.now()
