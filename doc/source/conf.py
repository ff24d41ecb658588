"""Sphinx configuration of magnetodb-statsd-middleware's documentation.

The configuration reference is generated from the option declarations
(``oslo_config.sphinxext`` through the package's ``oslo.config.opts``
entry point), and the architecture page from the modules' docstrings, so
that neither is written twice.
"""

project = 'magnetodb-statsd-middleware'
copyright = 'the magnetodb-statsd-middleware authors; Apache License 2.0'

extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
]

master_doc = 'index'
html_theme = 'alabaster'
