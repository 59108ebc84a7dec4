"""Generate a realistic support-mail corpus: plain, multipart with HTML, attachments, replies,
English, Spanish and French, error codes in subjects. Deterministic for a given seed."""

from __future__ import annotations

import datetime as dt
import random
from email.message import EmailMessage
from email.utils import format_datetime

from mailproc.core.catalog import load_default_catalog

CODES = sorted(load_default_catalog().codes)
TEXTS = {
    "en": (
        "Problem with {code}",
        "Hello support,\n\nSince this morning we get {code} when opening "
        "our sales dashboard. We already refreshed the credentials and cleared the cache, but "
        "the error keeps coming back and the team cannot work.\n\nCould you take a look?\n\n"
        "Thanks,\n{name}\n{company}",
    ),
    "es": (
        "Problema con {code}",
        "Hola equipo de soporte:\n\nDesde esta mañana recibimos el error "
        "{code} al abrir el tablero de ventas. Ya actualizamos las credenciales y borramos la "
        "caché, pero el error sigue apareciendo.\n\n¿Podrían revisarlo?\n\nSaludos,\n{name}\n"
        "{company}",
    ),
    "fr": (
        "Problème avec {code}",
        "Bonjour,\n\nDepuis ce matin nous obtenons l'erreur {code} en "
        "ouvrant le tableau de bord des ventes. Nous avons déjà renouvelé les identifiants et "
        "vidé le cache, mais l'erreur revient.\n\nPourriez-vous regarder ?\n\nCordialement,\n"
        "{name}\n{company}",
    ),
}
NAMES = [
    ("Laura Chen", "Northwind Analytics"),
    ("María López", "Grupo Sierra"),
    ("Antoine Moreau", "Banque Rivière"),
    ("Daniel Okafor", "Streamwise"),
    ("Oliver Hughes", "Thames Valley Energy"),
    ("Camille Laurent", "Atelier Lune"),
]


def generate(count: int, seed: int = 7) -> list[bytes]:
    """``count`` raw messages; about a quarter are replies to earlier ones."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
    mails: list[bytes] = []
    sent: list[tuple[str, str, str]] = []  # (message-id, subject, sender)
    for i in range(count):
        lang = rng.choices(["en", "es", "fr"], weights=[6, 2, 2])[0]
        name, company = rng.choice(NAMES)
        sender = f"user{rng.randrange(400)}@customer{rng.randrange(60)}.example"
        code = rng.choice(CODES)
        subject_t, body_t = TEXTS[lang]
        message = EmailMessage()
        message["From"] = f"{name} <{sender}>"
        message["To"] = "DataFlow Support <support@dataflow.com>"
        message["Date"] = format_datetime(start + dt.timedelta(minutes=7 * i))
        message["Message-ID"] = f"<bench-{seed}-{i}@customer.example>"
        body = body_t.format(code=code, name=name, company=company)
        if sent and rng.random() < 0.25:
            parent_id, parent_subject, _ = rng.choice(sent[-200:])
            message["Subject"] = f"Re: {parent_subject}"
            message["In-Reply-To"] = parent_id
            message["References"] = parent_id
            quoted = "\n".join("> " + line for line in body.splitlines())
            body = f"Any news on this?\n\nOn Mon, {name} wrote:\n{quoted}"
        else:
            message["Subject"] = subject_t.format(code=code)
        if lang != "en":
            message["Content-Language"] = lang
        message.set_content(body)
        kind = rng.random()
        if kind < 0.45:
            html = (
                "<html><body>"
                + "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
                + "</body></html>"
            )
            message.add_alternative(html, subtype="html")
        if kind > 0.8:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(2000, 6000)))
            message.add_attachment(
                data, maintype="image", subtype="png", filename=f"screenshot-{i}.png"
            )
        sent.append((message["Message-ID"], str(message["Subject"]), sender))
        mails.append(message.as_bytes())
    return mails
