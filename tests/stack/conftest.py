"""tests/stack: the live stack (Prometheus, Alertmanager, exporters, a job) is the `live`
fixture of live_stack.py, loaded once for the whole session by tests/conftest.py."""
