"""The per-attempt namespace: a restarted rank never reads a dead attempt's keys."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import torch.distributed as dist

from minicluster.trainer.rendezvous import PREFIX, agree_on_session

TIMEOUT = timedelta(seconds=20)


def run_ranks(store: dist.Store, world: int) -> list[str]:
    sessions: list[str | None] = [None] * world
    errors: list[BaseException] = []

    def rank(r: int) -> None:
        try:
            sessions[r] = agree_on_session(store, r, world, TIMEOUT)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return sessions


def test_all_ranks_agree_on_one_new_session_per_attempt():
    store = dist.HashStore()
    first = run_ranks(store, world=3)
    assert len(set(first)) == 1
    second = run_ranks(store, world=3)  # the restart: same store, old keys still there
    assert len(set(second)) == 1 and second[0] != first[0]


def test_stale_keys_of_a_dead_attempt_do_not_fool_anyone():
    store = dist.HashStore()
    # What a previous attempt left: rank 1's old nonce, its answer and its join.
    store.set(f"{PREFIX}/ask/1", "oldnonce")
    store.set(f"{PREFIX}/answer/1/oldnonce", "oldsession")
    store.set(f"{PREFIX}/joined/oldsession/1", "1")
    sessions = run_ranks(store, world=2)
    assert sessions[0] == sessions[1] != "oldsession"


def test_rank_zero_gives_up_after_the_timeout_naming_the_missing_ranks():
    with pytest.raises(TimeoutError, match=r"ranks \[1, 2\] did not join"):
        agree_on_session(dist.HashStore(), 0, 3, timedelta(seconds=0.3))
