"""Content types: request bodies to arrays, predictions to response bodies, one concern a module.

- ``media``: the media types, their aliases and Accept negotiation (no NumPy: the front uses it);
- ``limits``: the cap on what a body may decode to;
- ``records``: JSON and JSON Lines bodies as Python values;
- ``decode``: bodies to arrays, one decoder a type; ``npy``: NumPy bodies read without trusting them;
- ``encode``: predictions to bodies;
- ``libsvm``, ``recordio``: the AWS XGBoost and built-in algorithm formats.

Import the module you use; this package imports none of them.
"""
