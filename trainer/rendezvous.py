"""A fresh key namespace in torchrun's shared store for every attempt of the job.

Since torch 2.4 torchrun hands the workers its own TCPStore and keeps it across restarts.
The process group writes its bootstrap keys (each rank's gloo address) under fixed names
there, so after a restart a rank can read the address of a peer that died in the previous
attempt and fail with "connectFullMesh failed ... Connection refused" (pytorch issue
135712; seen in this project's SIGKILL test). TORCHELASTIC_RESTART_COUNT cannot name the
attempt: a node whose own workers did not fail restarts them without counting. Setting
TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun also avoids it, but the trainer should
not depend on how it was launched; hence this small handshake on top of the store.

Rank 0 picks a random session id. Every other rank posts a random nonce and waits for
the answer filed under that nonce, which no earlier attempt can have written; it then
confirms under the session id, which is equally new. All ranks then build the process
group inside `PrefixStore("minicluster/<session>")`.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import torch.distributed as dist

PREFIX = "minicluster/rendezvous"
POLL_SECONDS = 0.02


def agree_on_session(store: dist.Store, rank: int, world_size: int, timeout: timedelta) -> str:
    if rank != 0:
        nonce = uuid.uuid4().hex
        store.set(f"{PREFIX}/ask/{rank}", nonce)
        session = store.get(f"{PREFIX}/answer/{rank}/{nonce}").decode()  # waits
        store.set(f"{PREFIX}/joined/{session}/{rank}", "1")
        return session

    session = uuid.uuid4().hex
    pending = set(range(1, world_size))
    answered: dict[int, str] = {}
    deadline = time.monotonic() + timeout.total_seconds()
    while pending:
        for peer in sorted(pending):
            if store.check([f"{PREFIX}/joined/{session}/{peer}"]):
                pending.discard(peer)
            elif store.check([f"{PREFIX}/ask/{peer}"]):
                nonce = store.get(f"{PREFIX}/ask/{peer}").decode()
                if answered.get(peer) != nonce:  # a stale nonce gets a harmless answer too
                    store.set(f"{PREFIX}/answer/{peer}/{nonce}", session)
                    answered[peer] = nonce
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"ranks {sorted(pending)} did not join within {timeout}")
        if pending:
            time.sleep(POLL_SECONDS)
    return session


def session_store(
    master_addr: str, master_port: int, rank: int, world_size: int, timeout: timedelta
) -> dist.Store:
    """torchrun's store, narrowed to this attempt's fresh namespace."""
    store = dist.TCPStore(master_addr, master_port, is_master=False, timeout=timeout)
    session = agree_on_session(store, rank, world_size, timeout)
    return dist.PrefixStore(f"minicluster/{session}", store)
