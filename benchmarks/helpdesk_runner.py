"""django-helpdesk's ``get_email`` on a local mailbox directory; run by bench_helpdesk_compare.py
with the interpreter of the separate virtualenv that holds django-helpdesk (not mailproc's).

Usage: helpdesk-venv/bin/python helpdesk_runner.py MAIL_DIR WORK_DIR

Sets up a minimal Django project on SQLite in WORK_DIR (migrations not timed), one queue
reading MAIL_DIR (``email_box_type='local'``), Django's file e-mail backend (so the mails
helpdesk sends go to files, as mailproc's go to a Maildir), then times ``get_email`` and prints
one JSON line: seconds, tickets, follow-ups, files left unprocessed, mail files written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    mail_dir, work_dir = Path(sys.argv[1]), Path(sys.argv[2])
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        SITE_ID=1,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(work_dir / "hd.db")}
        },
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.sites",
            "django.contrib.messages",
            "django.contrib.humanize",
            "rest_framework",
            "helpdesk",
        ],
        MIDDLEWARE=[],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": []},
            }
        ],
        ROOT_URLCONF=__name__,  # the urlpatterns set below
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(work_dir / "sent"),
        DEFAULT_FROM_EMAIL="support@dataflow.com",
        MEDIA_ROOT=str(work_dir / "media"),
        STATIC_URL="/static/",
        LOGGING_CONFIG=None,
        HELPDESK_TEAMS_MODE_ENABLED=False,
    )
    django.setup()
    from django.urls import include, path

    # the links in helpdesk's mails are reversed in its namespace
    globals()["urlpatterns"] = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from helpdesk.models import FollowUp, Queue, Ticket

    Queue.objects.create(
        title="Support",
        slug="support",
        email_address="support@dataflow.com",
        allow_email_submission=True,
        email_box_type="local",
        email_box_local_dir=str(mail_dir),
        email_box_interval=0,
        logging_type="none",
    )
    started = time.perf_counter()
    call_command("get_email", quiet=True)
    seconds = time.perf_counter() - started
    sent = work_dir / "sent"
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tickets": Ticket.objects.count(),
                "followups": FollowUp.objects.count(),
                "left": len(os.listdir(mail_dir)),
                "sent_files": len(os.listdir(sent)) if sent.exists() else 0,
            }
        )
    )


if __name__ == "__main__":
    main()
