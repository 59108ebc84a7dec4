"""Imported by the parse pool's fork server: load what every worker needs, once, before forking.

Loading the language-identification model takes about 0.45 s; done here, the workers share it
instead of each loading its own copy.
"""

import mailproc.processing.parsepool  # noqa: F401  (the workers' code, imported once)
from mailproc.core.locale_policy import guess_language

guess_language("warm up")  # loads the model into the fork server
