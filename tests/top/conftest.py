"""tests/top: the query step on recorded answers, `top --once` against the live stack, and
the interactive view in tmux."""

from tests.stack.live_stack import live  # noqa: F401  (a pytest fixture)
