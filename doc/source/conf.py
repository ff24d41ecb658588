"""Sphinx configuration of magnetodb-statsd-middleware's documentation.

The configuration reference is generated from the option declarations
(``oslo_config.sphinxext`` through the package's ``oslo.config.opts``
entry point), and the architecture page from the modules' docstrings, so
that neither is written twice.
"""

import re

from oslo_config import sphinxext

project = 'magnetodb-statsd-middleware'
copyright = 'the magnetodb-statsd-middleware authors; Apache License 2.0'

extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
]

master_doc = 'index'
html_theme = 'alabaster'


# oslo.config parses help text as reStructuredText, where a word ending in
# "_" is a link ("[a-z0-9_]*" in user_labels' help). The help is written
# for the sample config and the log too, in plain text: its trailing
# underscores are escaped here, for this page alone.
_LINK_UNDERSCORE = re.compile(r'(?<=\w)_(?=[^\w`]|$)')
_format_opt = sphinxext._format_opt


def _format_opt_plain_underscores(opt, group_name):
    for line in _format_opt(opt, group_name):
        if line.startswith(' ') and not line.lstrip().startswith(':'):
            line = _LINK_UNDERSCORE.sub(r'\\_', line)
        yield line


sphinxext._format_opt = _format_opt_plain_underscores
