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

import sys
import time
from typing import Any

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


def _forward(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


_CLASS: type | None = None


def reconnecting(inner: Any, *, window_s: float | None = None) -> Any:
    """``inner`` (an Optuna RDB storage) behind retries of lost connections."""
    global _CLASS
    if _CLASS is None:
        from optuna.storages import BaseStorage
        from optuna.storages._heartbeat import BaseHeartbeat

        namespace = {name: _forward(name) for name in _METHODS}
        namespace.update(__module__=__name__, __init__=_init, _call=_call, __getstate__=_getstate, __setstate__=_setstate,
                         __doc__="An Optuna storage whose calls retry a lost database connection.")
        _CLASS = type("ReconnectingStorage", (BaseStorage, BaseHeartbeat), namespace)
    return _CLASS(inner, reconnect_window_s() if window_s is None else window_s)


def _init(self: Any, inner: Any, window_s: float) -> None:
    self.inner, self.window_s = inner, float(window_s)


def _getstate(self: Any) -> dict[str, Any]:
    return dict(self.__dict__)


def _setstate(self: Any, state: dict[str, Any]) -> None:
    self.__dict__.update(state)


def _call(self: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import optuna

    start = time.monotonic()
    wait, failed = _FIRST_WAIT_S, None
    while True:
        try:
            out = getattr(self.inner, name)(*args, **kwargs)
        except optuna.exceptions.UpdateFinishedTrialError:
            if failed is not None and name == "set_trial_state_values":
                out = True  # the lost attempt had committed the trial's end
            else:
                raise
        except Exception as err:
            elapsed = time.monotonic() - start
            if not is_connection_error(err) or elapsed + wait > self.window_s:
                if failed is not None:
                    say(f"the storage did not come back within {self.window_s:.0f} s ({RECONNECT_ENV})")
                raise
            if failed is None:
                failed = err
                say(f"lost the storage connection ({type(err).__name__}); retrying for up to "
                    f"{self.window_s:.0f} s")
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT_S)
            continue
        if failed is not None:
            say(f"storage connection back after {time.monotonic() - start:.1f} s ({name})")
        return out
