"""One module per framework, each building a ``handlers.base.Framework`` named ``FRAMEWORK``.

They use the handlers core (base, codecs, context, errors, user_code) and never each other.
Importing one does not import its framework: that happens in the worker that serves it.
"""
