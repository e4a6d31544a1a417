"""What several test modules share, so that no test module imports from another.

- ``tools``: settings for the server under test and calling its tools through an SDK client
- ``captures``: the recorded Letta frames in ``tests/data/letta``
- ``servers``: our streamable HTTP server in a thread or as a subprocess, on a free loopback port
- ``approval_host``: a scripted host answering elicitations
- ``privacy``: the privacy scenarios run against the double and the real stack
- ``fault_proxy``: a TCP proxy that takes Letta away; ``outages``: the outage phases run through it
- ``http``: one HTTP client for plain calls to loopback servers (no TLS context built per call)
- ``wheel``: the server's wheel built from this checkout (the ``built_wheel`` fixture of ``tests/conftest.py``)
"""
