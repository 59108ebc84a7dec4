"""The default classification rules (§2): named, ordered data that config may override."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Default rules, in order. Patterns are regular expressions matched case-insensitively,
# as whole words, on fold_text() of "subject\nnew text" (accents need not be written).
# The most severe priority among hits wins; the first hit that names an intent sets it.
DEFAULT_RULES: tuple[Mapping[str, Any], ...] = (
    {
        "name": "security-report",  # account compromise, unknown logins, data exposure
        "priority": "P1",
        "intent": "security",
        "triage": "security report: the Support Manager assesses it now (§2.2)",
        "patterns": [
            r"(?:account|accounts|password|credentials|api key|api token|token)s? (?:(?:has|have"
            r"|was|were|may have|might have|seems to have) been |is |seems |looks )?(?:compromised"
            r"|hacked|hijacked|breached|stolen|leaked)",
            r"(?:compromised|hacked|hijacked) (?:account|password|credentials)",
            r"(?:unknown|unrecogni[sz]ed|suspicious|unauthori[sz]ed|strange|unusual) (?:logins?"
            r"|log-ins?|sign-ins?|sessions?|access|devices?|ip addresse?s?)",
            r"(?:logins?|sign-ins?) (?:that |which )?(?:we|i) (?:don't|do not|can't|cannot)"
            r" recogni[sz]e",
            r"(?:logins?|sign-ins?) from (?:an? )?(?:unknown|strange|foreign|unfamiliar)",
            r"(?:data|security) (?:leak|breach|exposure|incident)",
            r"expos(?:es|ed|ing|e) (?:our |the |all |their |your )?(?:customers'? |clients'? "
            r"|users'? |employees'? )?(?:personal |private |sensitive |confidential )?(?:data"
            r"|information|records)",
            r"(?:cuenta|contrasena|credenciales|clave de (?:la )?api)s? (?:(?:ha|han) sido |fue "
            r"|fueron |esta |estan |parece )?(?:comprometid|hackead|robad|piratead|vulnerad)\w*",
            r"(?:inicios?|intentos?) de sesion (?:sospechos|desconocid|no autorizad|extran|raro)"
            r"\w*",
            r"(?:inicios? de sesion|accesos?) que no (?:reconocemos|reconozco|hicimos|hice)",
            r"accesos? (?:sospechos|desconocid|no autorizad|indebid)\w*",
            r"(?:ubicacion|ip|dispositivo|pais) desconocid[oa]",
            r"(?:fuga|filtracion|exposicion|brecha|violacion) de (?:datos|informacion|seguridad)",
            r"incidente de seguridad",
            r"expone(?:n)? (?:los |nuestros |sus )?datos",
            r"(?:compte|mot de passe|identifiants|cle d'api|jeton)s? (?:a ete |ont ete |est |sont "
            r"|semble |semblent |aurait ete |a peut-etre ete )?(?:compromis|pirate|vole|hacke)"
            r"\w*",
            r"connexions? (?:suspect|non autoris|frauduleu|inhabituel)\w*",
            r"(?:connexions?|acces) que (?:nous ne|je ne|personne ne) (?:reconnai|reconnaiss|a)"
            r"\w*",
            r"acces (?:non autoris|suspect|frauduleu|inconnu)\w*",
            r"(?:lieu|adresse ip|appareil|pays) inconnu\w*",
            r"(?:fuite|violation|exposition) de(?:s)? (?:donnees|informations)",
            r"(?:incident|faille) de securite",
            r"expos(?:e|ent) (?:les |nos |leurs |vos )?donnees",
        ],
    },
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
            r" (?:la |notre |nos |l')?(?:source|base|entrepot|connecteur|snowflake|bigquery"
            r"|redshift|postgres|mysql|salesforce)",
            r"(?:la )?connexion (?:a|avec) (?:la |notre |nos |l')?(?:source de donnees|base de"
            r" donnees|entrepot|connecteur)[\w ]{0,30}?(?:echoue|ne fonctionne (?:pas|plus))",
            r"data ?sources?[^.!?\n]{0,60}?(?:stopped (?:syncing|working|connecting)"
            r"|(?:is |are )?not (?:syncing|connecting)|won't (?:sync|connect)"
            r"|connection (?:failed|fails|error))",
            r"(?:fuentes?|origen(?:es)?) de datos[^.!?\n]{0,60}?(?:dejo de (?:sincronizar|funcionar"
            r"|conectar)|no (?:se )?(?:sincroniza|conecta|funciona)|(?:la )?conexion fall\w*"
            r"|error de conexion)",
            r"(?:no (?:podemos|puedo|pueden|logramos|consigo|conseguimos)|imposible)"
            r" conectar(?:nos|me|se)? (?:a|con) (?:la |nuestra |nuestro |el )?(?:fuente|base"
            r"|almacen|conector|origen)",
            r"(?:n'arriv|ne parv)\w* (?:pas|plus) a (?:nous |me |se )?connecter (?:a|au|avec)"
            r" (?:la |notre |nos |l')?(?:source|base|entrepot|connecteur)",
            r"sources? de donnees[^.!?\n]{0,60}?(?:echou\w*|en echec|erreur de connexion"
            r"|ne (?:se )?(?:synchronise|connecte|fonctionne)(?:nt)? (?:pas|plus))",
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
            r"(?:blocking|blocks|blocked|is holding up) (?:our |all |my |the )?(?:whole |entire )?"
            r"(?:team|work|business|operations|reporting)",
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
            r"(?:errata|falta de ortografia)s?",
            r"(?:coquille|faute de frappe|faute d'orthographe)s?",
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
            r"|you to add|to be able to)",
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
