"""One module per framework, each with ``build(root) -> list of model ids`` (see make_examples)."""
