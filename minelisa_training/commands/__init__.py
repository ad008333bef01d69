"""One module per `minelisa` subcommand: each defines ``add_arguments(parser)`` and ``run(args) -> int``.

Heavy imports (torch, transformers) stay inside ``run`` so that ``minelisa --help``
answers instantly.
"""
