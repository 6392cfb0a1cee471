"""A database storage that survives a lost connection: every storage call that fails because the
server went away (a PostgreSQL restart, a dropped network link) is tried again with backoff for
up to ``HONING_RECONNECT_S`` seconds (default 300), instead of failing the trial or killing the
worker. SQLAlchemy's ``pool_pre_ping`` opens a fresh connection once the server answers again.

Heartbeats: Optuna's heartbeat thread writes through this storage too, so a restart does not
stop a live trial's heartbeat (which would let another worker fail it as dead).

A write whose commit reached the server just before the connection dropped is sent again. For
a trial's final state that is harmless (a retried ``tell`` that finds the trial already finished
counts as done). A retried ``ask`` could, in that narrow window, create one extra trial; it
carries no worker tag, and the next start of the study fails it as left running.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
RECONNECT_ENV = "HONING_RECONNECT_S"
DEFAULT_RECONNECT_S = 300.0
_FIRST_WAIT_S, _MAX_WAIT_S = 0.2, 5.0

# the storage calls (optuna.storages.BaseStorage and BaseHeartbeat), all forwarded
_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id", "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials",
    "get_best_trial", "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs", "remove_session",
    "check_trial_is_updatable", "record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval",
    "get_failed_trial_callback", "get_heartbeat_stale_trial_callback",
)


def reconnect_window_s() -> float:
    """How long a storage call keeps retrying a lost connection (``HONING_RECONNECT_S``)."""
    from honing._core import env_number

    return env_number(RECONNECT_ENV, DEFAULT_RECONNECT_S, low=0, low_inclusive=True, allowed="a number of seconds >= 0")


def is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it: Optuna wraps SQLAlchemy's errors) is a lost or refused
    connection, as opposed to a bad query or a constraint."""
    import sqlalchemy.exc as sa

    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (sa.OperationalError, sa.InterfaceError)):
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
        e = e.__cause__ or e.__context__
    return False


def say(message: str) -> None:
    print(f"[honing.tune] {message}", file=sys.stderr, flush=True)


def with_reconnect(attempt: Callable[[bool], T], what: str, window_s: float) -> T:
    """``attempt(retried)``, tried again with backoff while it fails on a lost connection, for up
    to ``window_s`` seconds; ``retried`` tells an attempt that an earlier one was cut off. Other
    errors, and a connection still lost at the end of the window, are raised."""
    start, wait, lost = time.monotonic(), _FIRST_WAIT_S, False
    while True:
        try:
            out = attempt(lost)
        except Exception as err:
            if not is_connection_error(err) or time.monotonic() - start + wait > window_s:
                if lost:
                    say(f"{what}: the storage did not come back within {window_s:.0f} s ({RECONNECT_ENV})")
                raise
            if not lost:
                lost = True
                say(f"{what}: lost the storage connection ({type(err).__name__}); retrying for up to {window_s:.0f} s")
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT_S)
            continue
        if lost:
            say(f"{what}: storage connection back after {time.monotonic() - start:.1f} s")
        return out


def _forward(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


@functools.cache
def _storage_class() -> type:
    """The wrapper class, made on first use (optuna is imported then, not with honing.tune)."""
    from optuna.storages import BaseStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    namespace: dict[str, Any] = {name: _forward(name) for name in _METHODS}
    namespace.update(__module__=__name__, __init__=_init, _call=_call,
                     __doc__="An Optuna storage whose calls retry a lost database connection.")
    return type("ReconnectingStorage", (BaseStorage, BaseHeartbeat), namespace)


def reconnecting(inner: Any, *, window_s: float | None = None) -> Any:
    """``inner`` (an Optuna RDB storage) behind retries of lost connections."""
    return _storage_class()(inner, reconnect_window_s() if window_s is None else window_s)


def _init(self: Any, inner: Any, window_s: float) -> None:
    self.inner, self.window_s = inner, float(window_s)


def _call(self: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import optuna

    def attempt(retried: bool) -> Any:
        try:
            return getattr(self.inner, name)(*args, **kwargs)
        except optuna.exceptions.UpdateFinishedTrialError:
            if retried and name == "set_trial_state_values":
                return True  # the cut-off attempt had committed the trial's end
            raise

    return with_reconnect(attempt, name, self.window_s)
