"""The parse pool: worker processes give the same results as in-process preparation, keep
the order, report a message they cannot take instead of failing the batch, and start early
only when there is enough mail to share."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mailproc.app import App
from mailproc.config import Settings
from mailproc.core.limits import LimitExceeded
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.processing.parsepool import ParsePool, prepare_all
from mailproc.runtime import GC_THRESHOLDS


def mail(number: int) -> bytes:
    return (
        f"From: Ana <ana{number}@example.com>\r\nTo: support@dataflow.com\r\n"
        f"Subject: DS-1001 sync fails ({number})\r\nMessage-ID: <m{number}@example.com>\r\n\r\n"
        f"Our nightly sync fails with DS-1001 since Monday. Please help.\r\n"
    ).encode()


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    application = App(
        Settings.model_validate(
            {"database": {"url": db_url}, "intake": {"max_message_bytes": 2000}}
        )
    )
    try:
        yield application
    finally:
        application.close()


def test_workers_prepare_what_this_process_would_in_the_same_order(app: App) -> None:
    rules = app.processing_context().rules
    jobs: list[tuple[bytes, str | None]] = [(mail(n), None) for n in range(40)]
    jobs[7] = (mail(7) + b"x" * 5000, None)  # over the size limit
    pool = ParsePool(2, rules)
    try:
        pooled = pool.prepare(jobs)
    finally:
        pool.close()
    local = prepare_all(jobs, rules)
    assert isinstance(pooled[7], LimitExceeded) and isinstance(local[7], LimitExceeded)
    pooled_ok = [r for r in pooled if not isinstance(r, Exception)]
    local_ok = [r for r in local if not isinstance(r, Exception)]
    assert pooled_ok == local_ok and len(pooled_ok) == 39
    first = pooled_ok[0]
    assert first.classification is not None and first.classification.error_codes == ("DS-1001",)
    assert first.language is not None and first.language.language == "en"


def test_a_single_piped_message_never_starts_the_workers(app: App) -> None:
    pool = app.processing_context().pool
    assert pool is not None
    app.ingest([RawInput(mail(1), Envelope("stdin"))], processing_follows=True)
    assert not pool.workers_pool.started
    app.ingest((RawInput(mail(n), Envelope("file")) for n in range(2, 40)), processing_follows=True)
    assert pool.workers_pool.started  # the start was asked for while the mail was stored
    assert pool.workers_pool.wait_ready(30)  # it runs in the background: wait, do not race it
    assert app.process().count("created") == 39


def _collector_settings() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


def test_workers_run_with_the_tuned_garbage_collector(app: App) -> None:
    pool = ParsePool(1, app.processing_context().rules)
    try:
        pool.warm()
        thresholds, frozen = pool.workers_pool.submit(_collector_settings).result()
    finally:
        pool.close()
    assert thresholds == GC_THRESHOLDS
    assert frozen > 10_000  # the code and the language model loaded before the fork
