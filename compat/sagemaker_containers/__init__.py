"""``sagemaker_containers``: the names inference scripts written for the older AWS scikit-learn and
XGBoost containers import, over this server's own codecs (docs/compat.md lists them).

Only ``beta.framework``'s ``content_types``, ``encoders``, ``errors`` and ``worker`` have content;
``entry_point`` and ``beta.framework``'s ``env``, ``modules`` and ``transformer`` are training
tools, importable so that scripts importing them load, empty otherwise. A name not listed fails
with ImportError as usual. A model whose ``code/requirements.txt`` installs the real package gets
the real one: its packages come first on ``sys.path``.
"""
