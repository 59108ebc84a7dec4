"""The listener, IMAP and serve settings: parsing and the combinations that are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailproc.config import load_settings
from mailproc.config_transport import (
    ImapMailboxSettings,
    ImapSettings,
    ListenerSettings,
    split_host_port,
)


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:8025") == ("127.0.0.1", 8025)
    assert split_host_port("[::1]:25") == ("::1", 25)
    assert split_host_port("localhost:0") == ("localhost", 0)
    for bad in ("8025", "host:", ":25", "host:port", "host:70000"):
        with pytest.raises(ValueError):
            split_host_port(bad)


@pytest.mark.parametrize(
    "values",
    [
        {"listen": "nowhere"},
        {"tls_cert": "cert.pem"},
        {"require_starttls": True},
        {"auth_required": True},
        {"auth_file": "users"},
        {"max_recipients": 0},
        {"protocol": "esmtp"},
    ],
)
def test_listener_refuses_inconsistent_settings(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ListenerSettings.model_validate(values)


def test_mailbox_needs_exactly_one_password_and_a_distinct_processed_folder() -> None:
    base = {"name": "support", "user": "u"}
    secret = "pa55w0rd-secret"
    with pytest.raises(ValidationError):
        ImapMailboxSettings.model_validate(base)
    with pytest.raises(ValidationError):
        ImapMailboxSettings.model_validate({**base, "password": "p", "password_file": "f"})
    with pytest.raises(ValidationError):
        ImapMailboxSettings.model_validate({**base, "password": "p", "processed_folder": "INBOX"})
    with pytest.raises(ValidationError):
        ImapMailboxSettings.model_validate({**base, "password": "p", "name": "a b"})
    mailbox = ImapMailboxSettings.model_validate({**base, "password": secret})
    assert (mailbox.effective_port, mailbox.processed_folder) == (993, "Processed")
    assert secret not in repr(mailbox)
    plain = ImapMailboxSettings.model_validate({**base, "password": "p", "security": "plain"})
    assert plain.effective_port == 143
    with pytest.raises(ValidationError):
        ImapSettings.model_validate({"mailboxes": [mailbox.model_dump(), mailbox.model_dump()]})


def test_mailboxes_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILPROC_CONFIG", raising=False)
    boxes = [{"name": "support", "user": "u", "password_file": "/run/secret"}]
    monkeypatch.setenv("MAILPROC_IMAP_MAILBOXES", json.dumps(boxes))
    monkeypatch.setenv("MAILPROC_LISTENER_PROTOCOL", "lmtp")
    monkeypatch.setenv("MAILPROC_SERVE_WORKER", "false")
    settings = load_settings()
    assert settings.imap.mailboxes[0].password_file == "/run/secret"
    assert settings.listener.protocol == "lmtp"
    assert settings.serve.worker is False
