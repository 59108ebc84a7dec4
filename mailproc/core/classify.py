"""Priority (P0-P3) and intent classification of a support mail by ordered, named, data rules."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt, ValidationError

from mailproc.core.catalog import Catalog, CodeMatches, ErrorCode
from mailproc.core.model import Priority


class Intent(StrEnum):
    """What the customer wants, independent of urgency."""

    TECHNICAL_ISSUE = "technical_issue"
    OUTAGE = "outage"
    REFUND_CANCELLATION = "refund_cancellation"
    FEATURE_REQUEST = "feature_request"
    BILLING_QUESTION = "billing_question"
    SURVEY_ANSWER = "survey_answer"
    OTHER = "other"


class ClassifyError(ValueError):
    """Classification rules or settings (defaults or config) are malformed."""


_SEVERITY = {priority: rank for rank, priority in enumerate(Priority)}  # P0 is rank 0
_TECHNICAL = frozenset({Intent.TECHNICAL_ISSUE, Intent.OUTAGE})
_APOSTROPHES = re.compile("[’‘ʼ´]")
_COMBINING_MARKS = re.compile("[\u0300-\u036f]")
_PATTERN_LETTERS = re.compile(r"\\.|[^\\]+", re.DOTALL)
# An HTTP status is a 4xx/5xx number next to a word saying so ("error 503", "503 bad gateway").
# The number is found first (its first character is rare, so the scan is fast); the lookbehind
# placed after the digits checks that no word character or dot comes before the number.
_STATUS_NUMBER = re.compile(r"[45]\d\d(?<![\w.]...)(?!\w)")
_STATUS_BEFORE = re.compile(
    r"(?<!\w)(?:http(?:/\d(?:\.\d)?)?|error|erreur|status|statut|estado|code|codigo)"
    r"(?: code| de estado| http)?:? ?$"
)
_STATUS_AFTER = re.compile(
    r":? (?:error|erreur|service unavailable|service indisponible|servicio no disponible"
    r"|bad gateway|gateway time-?out|internal server error|too many requests)(?!\w)"
)
_SNIPPET = 80
MAX_TEXT_CHARS = 10_000  # rules read this much of the new text; the signal is at the top


def fold_text(text: str) -> str:
    """Lower-case ``text``, drop accents, unify apostrophes and collapse white space.

    Rule patterns are matched against this form, so ``caídos`` and ``caidos`` match alike.
    """
    if not text.isascii():
        text = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", _APOSTROPHES.sub("'", text)))
    return " ".join(text.split()).lower()


# Default rules, in order. Patterns are regular expressions matched case-insensitively,
# as whole words, on fold_text() of "subject\nnew text" (accents need not be written).
# The most severe priority among hits wins; the first hit that names an intent sets it.
DEFAULT_RULES: tuple[Mapping[str, Any], ...] = (
    {
        "name": "platform-outage",  # §2.1 P0: platform-wide failure, API down, all dashboards
        "priority": "P0",
        "intent": "outage",
        "patterns": [
            r"(?:whole|entire) (?:platform|service|app|application|site) (?:is |seems |went )?"
            r"(?:down|offline|unavailable|unreachable)",
            r"(?:platform|dataflow|site) (?:is |seems |went |appears )?(?:completely |totally )?"
            r"(?:down|offline|unreachable|unavailable)",
            r"all (?:of )?(?:our |the |my )?dashboards (?:are |went |have gone |seem )?"
            r"(?:down|offline|unavailable|blank|broken|not loading|failing)",
            r"(?:complete|total|full|major|platform[- ]wide) outage",
            r"service unavailable",
            r"(?:the )?api (?:is |seems |appears )?(?:completely |totally )?"
            r"(?:down|unavailable|unreachable|not responding)",
            r"(?:nobody|no one|none of our users) can (?:log ?in|sign ?in|access)",
            r"(?:la )?plataforma (?:esta |se encuentra |parece )?(?:completamente |totalmente )?"
            r"(?:caida|fuera de servicio|inaccesible|sin servicio|no disponible)",
            r"todos (?:los |nuestros )?(?:tableros|dashboards|paneles) (?:estan |se encuentran )?"
            r"(?:caidos|fuera de servicio|en blanco|inaccesibles|sin cargar|no cargan)",
            r"(?:caida|interrupcion) (?:total|general|completa|del servicio|de la plataforma)",
            r"servicio no disponible",
            r"(?:la )?api (?:esta |se encuentra )?(?:caida|inaccesible|fuera de servicio"
            r"|no disponible|no responde)",
            r"(?:la )?(?:plataforma|api) no (?:esta disponible|responde|funciona)",
            r"nadie (?:puede|pueden|de nuestro equipo puede) (?:acceder|entrar|iniciar sesion)",
            r"(?:la )?plateforme (?:est |semble )?(?:completement |totalement )?"
            r"(?:en panne|indisponible|hors service|inaccessible|hors ligne)",
            r"tous (?:les |nos )?(?:tableaux de bord|dashboards) (?:sont )?(?:en panne"
            r"|indisponibles|hors service|inaccessibles|vides|ne (?:se )?chargent plus)",
            r"panne (?:generale|totale|complete|majeure)",
            r"service (?:est )?indisponible",
            r"l'?api (?:est |semble )?(?:completement |totalement )?(?:en panne|indisponible"
            r"|inaccessible|hors service|ne repond plus)",
            r"personne ne peut (?:se connecter|acceder)",
        ],
    },
    {
        "name": "http-service-unavailable",  # §2.1 P0 example: "Error 503: Service Unavailable"
        "priority": "P0",
        "intent": "outage",
        "http": [502, 503, 504],
    },
    {
        "name": "partial-outage",  # §2.2 edge case: unclear scope, Support Manager decides
        "priority": "P1",
        "intent": "outage",
        "triage": "partial outage: scope unclear, Support Manager to set the priority (§2.2)",
        "patterns": [
            r"partial (?:outage|downtime)",
            r"(?:partially|intermittently) (?:down|unavailable|failing)",
            r"(?:some|several|multiple|many) (?:of (?:our|the) )?(?:customers|users|clients"
            r"|workspaces|regions) (?:are |have been )?(?:affected|down|unable|cannot|can't"
            r"|report(?:ing)?)",
            r"(?:caida|interrupcion) parcial",
            r"parcialmente (?:caid[oa]|inaccesible|fuera de servicio|disponible)",
            r"(?:algunos|varios|muchos) (?:de (?:nuestros|los) )?(?:clientes|usuarios)"
            r" (?:estan afectados|no pueden|reportan)",
            r"panne partielle",
            r"partiellement (?:indisponible|en panne|inaccessible)",
            r"(?:certains|plusieurs|de nombreux) (?:de nos )?(?:clients|utilisateurs) (?:sont"
            r" (?:touches|affectes|impactes)|ne peuvent|signalent)",
        ],
    },
    {
        "name": "refund-or-cancellation",  # §6
        "intent": "refund_cancellation",
        "patterns": [
            r"refund(?:s|ed|ing)?",
            r"money back",
            r"cancel(?:l?ing|l?ed)? (?:my |our |the )?(?:subscription|account|plan|contract"
            r"|renewal)",
            r"cancellation",
            r"charge ?back",
            r"reembols\w*",
            r"devolucion (?:del|de mi|de nuestro) (?:dinero|pago|importe)",
            r"cancelar (?:mi |nuestra |la )?(?:suscripcion|cuenta|plan|contrato)",
            r"cancelacion",
            r"dar(?:me|nos)? de baja",
            r"rembours\w*",
            r"annuler (?:mon |notre |l')?(?:abonnement|compte|contrat|forfait)",
            r"resili\w*",
        ],
    },
    {
        "name": "error-catalog",  # §2.2 step 2: the troubleshooting guide's code sets priority
        "intent": "technical_issue",
        "catalog": True,
    },
    {
        "name": "data-source-connection-failure",  # §2.1 P1
        "priority": "P1",
        "intent": "technical_issue",
        "patterns": [
            r"(?:data ?source|database|warehouse|connector|snowflake|bigquery|redshift"
            r"|postgres(?:ql)?|mysql|salesforce)s? (?:connection |sync )?(?:fail\w*|error"
            r"|refused|timed? ?out|keeps dropping|is broken|stopped working)",
            r"(?:cannot|can't|can not|unable to|could not|couldn't) connect",
            r"connection (?:to|with) (?:our |the |my )?[\w ]{0,30}?(?:fails|failed|failing"
            r"|is failing|times out|timed out|refused)",
            r"(?:no (?:podemos|puedo|pueden|logramos|consigo|conseguimos)|imposible) conectar",
            r"(?:error|fallo|falla) (?:de|en la|al) conex\w*",
            r"(?:la )?conexion (?:a|con) (?:la |nuestra )?[\w ]{0,30}?(?:falla|fallo"
            r"|no funciona|se cae)",
            r"(?:impossible|echec) de (?:la |se |nous |me )?connect\w* (?:a|au|avec)"
            r" (?:la |notre |nos )?(?:source|base|entrepot|connecteur)",
            r"(?:la )?connexion (?:a|avec) (?:la |notre )?(?:source de donnees|base de donnees)"
            r"[\w ]{0,30}?(?:echoue|ne fonctionne (?:pas|plus))",
        ],
    },
    {
        "name": "sso-login-failure",  # §2.1 P1; §3.2 use case SSO-9001
        "priority": "P1",
        "intent": "technical_issue",
        "patterns": [
            r"(?:sso|single sign[- ]on|saml|okta)[\w ,'-]{0,40}?(?:fail\w*|error|broken"
            r"|not working|doesn't work|does not work|can't|cannot|unable|loop\w*|rejected)",
            r"(?:login|log ?in|sign ?in) (?:fail\w*|error|issue|problem)s?",
            r"(?:cannot|can't|can not|unable to|could not|couldn't) (?:log ?in|sign ?in"
            r"|access (?:our |my |the )?account)",
            r"(?:sso|inicio de sesion unico|saml|okta)[\w ,'-]{0,40}?(?:falla|fallo|error"
            r"|no funciona)",
            r"(?:no (?:podemos|puedo|pueden|logramos|consigo)|imposible) (?:iniciar sesion"
            r"|entrar|acceder)",
            r"(?:error|fallo|falla) (?:de|en el|al) (?:inicio de sesion|login|iniciar sesion)",
            r"(?:sso|authentification unique|saml|okta)[\w ,'-]{0,40}?(?:echoue|echec|erreur"
            r"|ne fonctionne (?:pas|plus))",
            r"impossible de (?:nous |me |se )?(?:connecter|identifier|authentifier)",
            r"(?:echec|erreur) (?:de |d')(?:connexion|authentification|identification)",
        ],
    },
    {
        "name": "rate-limit-breaks-integration",  # §2.2 use case: API-4004 is P1 (integration)
        "priority": "P1",
        "intent": "technical_issue",
        "http": [429],
        "patterns": [
            r"too many requests",
            r"rate[- ]limit(?:s|ed|ing)?",
            r"throttl\w*",
            r"demasiadas (?:solicitudes|peticiones)",
            r"limite de (?:solicitudes|peticiones|tasa|velocidad)",
            r"trop de requetes",
            r"limit(?:e|ation) de (?:requetes|debit|taux)",
        ],
    },
    {
        "name": "major-feature-unusable",  # §2.1 P1
        "priority": "P1",
        "intent": "technical_issue",
        "patterns": [
            r"(?:completely |totally )?unusable",
            r"(?:blocking|blocks|blocked) (?:our|all|the whole|my) (?:team|work|business"
            r"|operations|reporting)",
            r"(?:totalmente |completamente )?inutilizable",
            r"(?:nos )?(?:bloquea|impide) (?:trabajar|todo el trabajo|nuestra operacion)",
            r"(?:totalement |completement )?inutilisable",
            r"(?:bloque|empeche) (?:toute )?(?:notre activite|l'equipe|le travail)",
        ],
    },
    {
        "name": "slow-dashboard",  # §2.1 P2
        "priority": "P2",
        "intent": "technical_issue",
        "patterns": [
            r"(?:dashboard|report|page|widget|chart|query|querie)s? (?:is |are |have been "
            r"|has been |seems? )?(?:very |really |extremely |super |so |quite )?(?:slow"
            r"|sluggish|laggy)",
            r"slow(?:ly)? (?:loading|to load)",
            r"takes? (?:\d+ |several |a few )?(?:minutes|forever|ages|too long) to load",
            r"(?:dashboard|report|page)s? (?:load|loads|loading) (?:very |really |extremely "
            r"|so )?slowly",
            r"(?:tablero|dashboard|panel|informe|reporte|consulta)(?:e?s)? (?:esta |estan |va "
            r"|van )?(?:muy |demasiado |bastante |extremadamente )?lent[oa]s?",
            r"carga (?:muy |demasiado |bastante )?lenta",
            r"tarda(?:n)? (?:mucho|demasiado|\d+ minutos|varios minutos) en cargar",
            r"(?:tableaux? de bord|dashboard|rapport|page|requete)s? (?:est |sont )?(?:tres "
            r"|trop |extremement |vraiment )?lent(?:e|s|es)?",
            r"chargement (?:tres |trop |extremement )?lent",
            r"(?:met|mettent|prend|prennent) (?:beaucoup de temps|trop de temps|\d+ minutes"
            r"|plusieurs minutes) a (?:se )?charger",
        ],
    },
    {
        "name": "mobile-app-error",  # §2.1 P2
        "priority": "P2",
        "intent": "technical_issue",
        "patterns": [
            r"(?:mobile|ios|android|iphone|ipad) app(?:lication)?[^.!?]{0,60}?(?:crash\w*"
            r"|error|not (?:loading|opening|working|load|open)|won't (?:load|open|start)"
            r"|doesn't (?:load|open|work)|freez\w*|blank|stuck)",
            r"(?:app|aplicacion) (?:movil|de (?:iphone|android|ios))[^.!?]{0,60}?(?:se cierra"
            r"|no (?:carga|abre|funciona|inicia)|falla|error|se congela|en blanco)",
            r"(?:appli|application) (?:mobile|ios|android|iphone)[^.!?]{0,60}?(?:plante"
            r"|crash\w*|ne (?:se )?(?:charge|lance|ouvre|fonctionne) (?:pas|plus)|erreur"
            r"|bloquee|se fige|ecran blanc)",
        ],
    },
    {
        "name": "minor-issue",  # §2.1 P2: minor issue or workaround available
        "priority": "P2",
        "intent": "technical_issue",
        "patterns": [
            r"minor (?:issue|bug|problem|glitch)",
            r"(?:there is|we have|found|using|with) a workaround",
            r"(?:problema|fallo|error) menor",
            r"solucion (?:alternativa|temporal)",
            r"(?:probleme|bug|souci) mineur",
            r"solution de contournement",
        ],
    },
    {
        "name": "ui-bug",  # §2.1 P3
        "priority": "P3",
        "intent": "technical_issue",
        "patterns": [
            r"(?:ui|display|layout|cosmetic|visual|styling|alignment|rendering) (?:bug|issue"
            r"|glitch|problem)",
            r"(?:button|icon|label|tooltip|column|header|legend|text|menu)s? (?:is |are )?"
            r"(?:misaligned|overlapping|cut off|truncated|hidden|overlap)",
            r"typos?",
            r"comments? (?:are |is )?(?:not (?:loading|showing|appearing)|missing)",
            r"(?:error|fallo|problema) (?:visual|de (?:interfaz|visualizacion|diseno|formato))",
            r"(?:boton|icono|etiqueta|columna|leyenda|texto|menu)(?:e?s)? (?:esta |estan )?"
            r"(?:desalinead|cortad|superpuest|encimad)\w*",
            r"(?:los )?comentarios no (?:cargan|se cargan|aparecen|se muestran)",
            r"(?:bug|probleme|souci) (?:d'affichage|visuel|d'interface|de mise en page)",
            r"(?:bouton|icone|libelle|colonne|legende|texte|menu)s? (?:est |sont )?"
            r"(?:mal aligne|tronque|coupe|superpose|chevauch)\w*",
            r"(?:les )?commentaires ne (?:se )?(?:chargent|s'affichent|apparaissent) (?:pas|plus)",
        ],
    },
    {
        "name": "billing-question",  # §6 and plan questions
        "intent": "billing_question",
        "patterns": [
            r"invoices?",
            r"billing",
            r"billed",
            r"charged (?:twice|double|incorrectly|again)",
            r"(?:payment|credit card|card) (?:failed|declined|details|method)",
            r"receipts?",
            r"vat",
            r"pricing",
            r"(?:upgrade|downgrade) (?:my |our |to )",
            r"factura\w*",
            r"cobr(?:o|aron|ado)\w*",
            r"cargo (?:doble|duplicado|indebido)",
            r"tarjeta de credito",
            r"precios?",
            r"factur\w*",
            r"paiement",
            r"prelevement",
            r"carte (?:bancaire|de credit)",
            r"tarifs?",
        ],
    },
    {
        "name": "feature-request",  # §2.1 P3 by the default priority
        "intent": "feature_request",
        "patterns": [
            r"feature request",
            r"(?:would|'d) (?:love|like) (?:to see|to have|it if|the ability|a way|an option"
            r"|you to add)",
            r"(?:please|could you|can you|would you) (?:please )?(?:add|consider adding)",
            r"it would be (?:great|nice|helpful|useful|awesome) (?:if|to)",
            r"(?:enhancement|improvement) (?:request|suggestion|idea)",
            r"(?:is|are) (?:there|you) (?:any )?plan(?:s|ning)? to (?:add|support)",
            r"solicitud de (?:funcion|funcionalidad|mejora|caracteristica)",
            r"(?:nos |me )(?:gustaria|encantaria) (?:poder|tener|ver|contar con)",
            r"(?:podrian|pueden|podrias|puedes) (?:agregar|anadir|incluir|incorporar)",
            r"seria (?:genial|util|muy util|bueno|ideal) (?:si|poder|tener|contar)",
            r"demande (?:de |d')(?:fonctionnalite|amelioration|evolution)",
            r"(?:aimerions|aimerais|souhaiterions|souhaiterais) (?:pouvoir|avoir|voir)",
            r"(?:pourriez|pouvez)[- ]vous (?:ajouter|prendre en charge|integrer)",
            r"ce serait (?:super|utile|tres utile|bien|genial|pratique) (?:de|si|d')",
        ],
    },
    {
        "name": "survey-answer",  # §8
        "intent": "survey_answer",
        "patterns": [
            r"(?:satisfaction )?survey",
            r"(?:i|we)(?:'d| would) rate",
            r"[1-5] ?/ ?5",
            r"[1-5] (?:out of|of) (?:5|five)",
            r"(?:score|rating):? [1-5]",
            r"encuesta",
            r"(?:calificacion|puntuacion|valoracion)(?: de satisfaccion)?:? [1-5]",
            r"[1-5] (?:de|sobre) 5",
            r"enquete",
            r"sondage",
            r"(?:questionnaire|note) de satisfaction",
            r"[1-5] sur 5",
        ],
    },
    {
        "name": "technical-signal",  # technical wording without a priority: triage
        "intent": "technical_issue",
        "patterns": [
            r"errors?",
            r"bugs?",
            r"crash\w*",
            r"fail(?:s|ed|ing|ure)?",
            r"broken",
            r"not working",
            r"(?:doesn't|does not|don't|isn't|won't|can't|cannot) (?:work|load|open|sync"
            r"|refresh)",
            r"(?:issue|problem)s? with",
            r"stopped working",
            r"(?:is|are|went|goes) down",
            r"not (?:loading|showing|syncing|refreshing)",
            r"time(?:s|d)? ?out",
            r"unavailable",
            r"[a-z]{2,5}-\d{4,5}",
            r"no funciona",
            r"fall(?:a|o|an|aron)",
            r"problemas? con",
            r"dejo de funcionar",
            r"no (?:carga|cargan|se muestra|se muestran|sincroniza|se actualiza)",
            r"(?:esta|estan) caid[oa]s?",
            r"no disponible",
            r"erreurs?",
            r"ne fonctionne (?:pas|plus)",
            r"ne (?:se )?(?:charge|chargent|synchronise|s'affiche|s'affichent) (?:pas|plus)",
            r"indisponible",
            r"panne",
            r"plant(?:e|age)",
            r"(?:probleme|souci)s? (?:avec|de|sur)",
            r"bogue",
        ],
    },
)


class _RuleData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    priority: Priority | None = None
    intent: Intent | None = None
    triage: str | None = None
    patterns: list[str] = []
    codes: list[str] = []
    http: list[int] = []
    catalog: bool = False
    enabled: bool = True


class _ClassifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = []
    replace_default_rules: bool = False
    default_priority: Priority = Priority.P3
    unmatched_technical_priority: Priority = Priority.P2
    conflict_spread: PositiveInt = 2
    triage_within_minutes: PositiveFloat = 30


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired: what it proposes and why."""

    rule: str
    priority: Priority | None
    intent: Intent | None
    reason: str
    triage: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; it fires when any of its conditions holds."""

    name: str
    priority: Priority | None
    intent: Intent | None
    triage: str | None
    pattern: re.Pattern[str] | None
    codes: frozenset[str]
    http: frozenset[int]
    catalog: bool

    def hits(self, folded: str, codes: CodeMatches, statuses: tuple[int, ...]) -> list[RuleHit]:
        """The hits of this rule on folded text with the codes and HTTP statuses found in it."""
        if self.catalog:
            return [self._catalog_hit(code) for code in codes.known]
        reasons: list[str] = []
        match = self.pattern.search(folded) if self.pattern is not None else None
        if match is not None:
            reasons.append(f'text matched "{match.group(0)[:_SNIPPET]}"')
        found = (*(code.code for code in codes.known), *codes.unknown)
        named = [code for code in found if code in self.codes]
        if named:
            reasons.append(f"error code {', '.join(named)}")
        http = [str(status) for status in statuses if status in self.http]
        if http:
            reasons.append(f"HTTP {', '.join(http)} in text")
        if not reasons:
            return []
        return [RuleHit(self.name, self.priority, self.intent, "; ".join(reasons), self.triage)]

    def _catalog_hit(self, code: ErrorCode) -> RuleHit:
        # A P0 code is by definition a critical outage (§2.1).
        intent = Intent.OUTAGE if code.priority is Priority.P0 else self.intent
        reason = (
            f"error code {code.code} ({code.title('en')}): catalog priority {code.priority},"
            f" escalation team {code.team}"
        )
        return RuleHit(self.name, code.priority, intent, reason, self.triage)


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome for one mail; ``priority_rule`` is None when the default priority applied."""

    priority: Priority
    intent: Intent
    rule_hits: tuple[RuleHit, ...]
    error_codes: tuple[str, ...]
    unknown_codes: tuple[str, ...]
    http_statuses: tuple[int, ...]
    priority_rule: str | None
    needs_triage: bool
    triage_reason: str | None
    triage_within: dt.timedelta | None  # Support Manager escalation due this long after receipt


@dataclass(frozen=True, slots=True)
class Classifier:
    """Rules, catalog and settings; build once, then classify every inbound mail."""

    catalog: Catalog
    rules: tuple[Rule, ...]
    default_priority: Priority = Priority.P3
    unmatched_technical_priority: Priority = Priority.P2
    conflict_spread: int = 2
    triage_within: dt.timedelta = dt.timedelta(minutes=30)

    def classify(self, subject: str, new_text: str) -> Classification:
        """Classify a mail from its subject and new text (quotes.split_reply removes history)."""
        text = f"{subject}\n{new_text[:MAX_TEXT_CHARS]}"
        matches = self.catalog.find_codes(text)
        folded = fold_text(text)
        statuses = _http_statuses(folded)
        hits = tuple(hit for rule in self.rules for hit in rule.hits(folded, matches, statuses))
        intent = next((hit.intent for hit in hits if hit.intent is not None), Intent.OTHER)
        triage = list(dict.fromkeys(hit.triage for hit in hits if hit.triage))
        proposals = [
            (_SEVERITY[hit.priority], hit.priority, hit.rule)
            for hit in hits
            if hit.priority is not None
        ]
        if proposals:
            _, priority, priority_rule = min(proposals, key=itemgetter(0))
            rank, weakest, weakest_rule = max(proposals, key=itemgetter(0))
            if rank - _SEVERITY[priority] >= self.conflict_spread:
                triage.append(
                    f"conflicting signals: {priority_rule} says {priority},"
                    f" {weakest_rule} says {weakest}"
                )
        elif intent in _TECHNICAL:
            priority, priority_rule = self.unmatched_technical_priority, None
            unknown = f" (unknown codes: {', '.join(matches.unknown)})" if matches.unknown else ""
            triage.append(f"technical mail matched no priority rule{unknown}")
        else:
            priority, priority_rule = self.default_priority, None
        return Classification(
            priority=priority,
            intent=intent,
            rule_hits=hits,
            error_codes=tuple(code.code for code in matches.known),
            unknown_codes=matches.unknown,
            http_statuses=statuses,
            priority_rule=priority_rule,
            needs_triage=bool(triage),
            triage_reason="; ".join(triage) or None,
            triage_within=self.triage_within if triage else None,
        )


def build_rules(
    overrides: Sequence[Mapping[str, Any]] = (),
    base: Sequence[Mapping[str, Any]] = DEFAULT_RULES,
) -> tuple[Rule, ...]:
    """Compile ``base`` rules with ``overrides`` applied.

    An override whose ``name`` matches a base rule replaces the fields it gives, in place;
    ``enabled = false`` removes the rule; any other override is appended.
    """
    merged: dict[str, dict[str, Any]] = {}
    for data in (*base, *overrides):
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ClassifyError(f"classification rule without a name: {dict(data)!r}")
        merged[name] = {**merged.get(name, {}), **data}
    rules = (_compile(data) for data in merged.values())
    return tuple(rule for rule in rules if rule is not None)


def classifier_from_config(catalog: Catalog, config: Mapping[str, Any] | None = None) -> Classifier:
    """A classifier from the ``[classify]`` config table (None: all defaults)."""
    try:
        settings = _ClassifyConfig.model_validate(config or {})
    except ValidationError as exc:
        raise ClassifyError(f"classify settings: {exc}") from exc
    base = () if settings.replace_default_rules else DEFAULT_RULES
    return Classifier(
        catalog=catalog,
        rules=build_rules(settings.rules, base),
        default_priority=settings.default_priority,
        unmatched_technical_priority=settings.unmatched_technical_priority,
        conflict_spread=settings.conflict_spread,
        triage_within=dt.timedelta(minutes=settings.triage_within_minutes),
    )


def _http_statuses(folded: str) -> tuple[int, ...]:
    found: dict[int, None] = {}
    for match in _STATUS_NUMBER.finditer(folded):
        start, end = match.span()
        if _STATUS_BEFORE.search(folded, max(0, start - 30), start) or _STATUS_AFTER.match(
            folded, end
        ):
            found[int(match[0])] = None
    return tuple(found)


def _compile(raw: Mapping[str, Any]) -> Rule | None:
    try:
        data = _RuleData.model_validate(raw)
    except ValidationError as exc:
        raise ClassifyError(f"classification rule {raw.get('name')!r}: {exc}") from exc
    if not data.enabled:
        return None
    if not (data.patterns or data.codes or data.http or data.catalog):
        raise ClassifyError(f"classification rule {data.name!r} has no condition")
    if data.catalog and (data.patterns or data.codes or data.http or data.priority):
        raise ClassifyError(f"catalog rule {data.name!r} takes its priority from the catalog only")
    if data.priority is None and data.intent is None and data.triage is None:
        raise ClassifyError(f"classification rule {data.name!r} has no effect")
    return Rule(
        name=data.name,
        priority=data.priority,
        intent=data.intent,
        triage=data.triage,
        pattern=_pattern(data.name, data.patterns),
        codes=frozenset(code.upper() for code in data.codes),
        http=frozenset(data.http),
        catalog=data.catalog,
    )


def _pattern(name: str, patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    folded = "|".join(f"(?:{_fold_pattern(pattern)})" for pattern in patterns)
    try:
        return re.compile(rf"(?<!\w)(?:{folded})(?!\w)")
    except re.error as exc:
        raise ClassifyError(f"classification rule {name!r}: bad pattern: {exc}") from exc


def _fold_pattern(pattern: str) -> str:
    """Fold a pattern like the text (accents off, lower case) but leave escapes such as \\W."""
    plain = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", pattern))
    return _PATTERN_LETTERS.sub(lambda m: m[0] if m[0].startswith("\\") else m[0].lower(), plain)
