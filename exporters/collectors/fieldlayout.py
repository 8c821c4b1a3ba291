"""Where the wanted numbers sit among a kernel file's words, learned once per layout.

/proc/vmstat, /proc/meminfo and /proc/net/snmp6 print the same names in the same order
at every read; only the numbers change. A FieldLayout learns, from the file's words, the
position of each wanted field's name and number. At later reads it splits the text
(one call, in C) and checks that every wanted name is still at its place and that the
file has as many words as before (a field that appeared or went away changes that); if
so it picks the numbers by position, else it learns the layout again. /proc/vmstat has
some 180 lines of which node_exporter keeps 8: the Python loop over every line was most
of that collector's time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Sequence

# locate(words) -> (name position, number position, key) for each wanted field.
Locate = Callable[[Sequence[str]], list[tuple[int, int, Hashable]]]


def _picker(positions: Sequence[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """The words at `positions` as a tuple (itemgetter, but a tuple for any count)."""
    if len(positions) == 1:
        (position,) = positions
        return lambda words: (words[position],)
    if not positions:
        return lambda words: ()
    return operator.itemgetter(*positions)


class _Learned:
    __slots__ = ("count", "keys", "name_picker", "names", "number_picker")

    def __init__(self, words: Sequence[str], fields: list[tuple[int, int, Hashable]]):
        self.count = len(words)
        self.name_picker = _picker([name for name, _, _ in fields])
        self.names = self.name_picker(words)
        self.number_picker = _picker([number for _, number, _ in fields])
        self.keys = tuple(key for _, _, key in fields)


class FieldLayout:
    def __init__(self, locate: Locate):
        self.locate = locate
        self._learned: _Learned | None = None

    def fields(self, text: str) -> zip:
        """(key, number's word) for each wanted field of `text`, in the file's order."""
        words = text.split()
        learned = self._learned
        if (
            learned is None
            or len(words) != learned.count
            or learned.name_picker(words) != (learned.names)
        ):
            learned = self._learned = _Learned(words, self.locate(words))  # replaced whole
        return zip(learned.keys, learned.number_picker(words), strict=True)
