"""Whether any network interface may have changed since the last look (Linux netlink).

The kernel announces every change of an interface's sysfs attributes that netclass
publishes on the rtnetlink link group (RTMGRP_LINK) as RTM_NEWLINK or RTM_DELLINK: MTU,
flags, address, alias, queue length, group, operstate and dormant (dev_change_*(),
netdev_state_change()), and carrier with its change counters (linkwatch); a NIC's
speed and duplex change with a renegotiation, which takes the carrier down and up. A
socket subscribed to that group and drained at every scrape says "nothing changed" only
when no such message arrived, so netclass can serve the attributes it read before
instead of reading about 15 sysfs files per interface again.

Anything uncertain counts as a change: the first look, a socket that could not be opened
(no netlink, a sandbox), an overflowed socket buffer (ENOBUFS: messages were lost), any
other error. Traffic counters are not attributes of this kind (netdev reads them anew
at every scrape).
"""

from __future__ import annotations

import errno
import socket

RTMGRP_LINK = 1  # <linux/rtnetlink.h>
NETLINK_ROUTE = 0
_RECV_SIZE = 65536


class LinkEvents:
    """`changed()` is True when a link message arrived since the previous call (or when
    that cannot be known). Drain it *before* reading the attributes: a change made while
    they are read then shows as an event at the next scrape, which reads them again."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self._first = True
        try:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_ROUTE
            )
        except (AttributeError, OSError):  # not Linux, or netlink refused
            return
        try:
            sock.bind((0, RTMGRP_LINK))
        except OSError:
            sock.close()
            return
        self.sock = sock

    @property
    def watching(self) -> bool:
        return self.sock is not None

    def changed(self) -> bool:
        sock = self.sock
        if sock is None:
            return True
        changed, self._first = self._first, False
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return changed
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # overflowed: messages were dropped
                    changed = True
                    continue  # the error is reported once; drain what is queued
                return True
            if not data:
                return True
            changed = True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
