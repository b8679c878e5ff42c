"""One training run per work dir: :func:`work_dir_lock` takes ``<work_dir>/.lock`` (the owner's pid, host and start
time) for as long as a run trains into the folder, so that a second run into the same folder stops at once
instead of interleaving its log and overwriting the first one's checkpoints."""

import json
import os
import os.path as osp
import socket
import time
import warnings
from contextlib import contextmanager

LOCK_NAME = '.lock'


class WorkDirInUseError(RuntimeError):
    """Another live run holds the work dir."""


def _owner_alive(owner: dict) -> bool:
    """Whether the lock's process still runs (a lock of another host is taken as live: it cannot be checked)."""
    if owner.get('host') != socket.gethostname():
        return True
    try:
        os.kill(int(owner['pid']), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read_owner(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # half-written or unreadable: its writer died before finishing


def _try_create(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    owner = dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime('%Y-%m-%d %H:%M:%S'))
    with os.fdopen(fd, 'w') as f:
        json.dump(owner, f)
    return True


@contextmanager
def work_dir_lock(work_dir: str):
    """Hold ``work_dir`` for this process: a lock of a live run refuses with WorkDirInUseError, the lock of a run
    that is gone (killed, crashed) is taken over with a warning."""
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    while not _try_create(path):
        owner = _read_owner(path)
        if owner and _owner_alive(owner):
            raise WorkDirInUseError(
                f'{work_dir} is in use by another training run (pid {owner.get("pid")} on {owner.get("host")}, '
                f'started {owner.get("started")}): wait for it to end, or train into another folder (--work-dir). '
                f'If that run is gone, delete {path}'
            )
        warnings.warn(f'{work_dir}: taking over the lock of a run that has ended without releasing it ({owner})')
        try:
            os.remove(path)
        except FileNotFoundError:
            pass  # another run took it over first; try again
    try:
        yield path
    finally:
        if _read_owner(path).get('pid') == os.getpid():
            os.remove(path)
