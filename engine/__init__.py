"""creditflow engine, in rooms that name the architecture.

Imports point from the outer rooms to the inner ones, never back (checked by
``tests/unit/test_layers.py`` with import-linter):

    engine.cli       the ``creditflow`` command line and the demo (outermost)
    engine.runtime   wiring and running: the Faust worker, the embedded stack, processes
    engine.api       serving: the HTTP API, its product cache
    engine.signals   credit signals: the rules over the kept months, their episodes
    engine.access    the rights layer's rules: entities, commands, tokens, query records
    engine.products  the two products: specs, classification, kernels, assembly
    engine.events    the event contract and the topics that carry it
    engine.*         the few modules every room shares: settings, metrics, errors, codec,
                     periods, pseudonym

``agents/`` (the stages) and ``state/`` (the stores) sit between serving and the signals.
"""
