"""Fixtures of tests/stack; the live stack (Prometheus, Alertmanager, exporters, a job) is
in live_stack.py and started once per session by the first test that asks for it."""

from tests.stack.live_stack import live  # noqa: F401  (a pytest fixture)
