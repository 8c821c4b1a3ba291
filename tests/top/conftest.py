"""tests/top: the query step on recorded answers, `top --once` against the live stack (the
`live` fixture, loaded once for the session by tests/conftest.py), and the interactive
view in tmux."""
