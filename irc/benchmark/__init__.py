"""`irc bench`: time a compiled crate against onnxruntime and tract on the same inputs.

* ``harness``: verify every engine against onnxruntime, then time them in interleaved rounds;
* ``engines``: one engine per worker process (``python -m irc.benchmark.engines``);
* ``irc_engine``: emit, build (cached by source hash), verify and native-loop the crate;
* ``procs``: peak RSS of processes; ``report``: ratios and the Markdown table;
* ``command``: the ``irc bench`` command (argument checks, rich table).

Nothing is imported here: the worker processes import this package, and their peak RSS
must measure the engine, not the harness.
"""
