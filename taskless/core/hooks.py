"""Extension points: the ``taskless`` pluggy hooks and the plugin manager.

Plugins add transports and observe what Taskless does (for logging, metrics or tracing).
A plugin is any object or module with functions marked ``@hookimpl`` and named after a hook
below. Plugins are found in two ways:

* installed packages declare an entry point in the ``taskless`` group::

      [project.entry-points.taskless]
      myplugin = "mypackage.taskless_plugin"

* code registers one explicitly with :func:`register` (and :func:`unregister`, or the
  :func:`registered` context manager in tests).

Built-in features (the ``http``/``https`` transports) are registered the same way, as ordinary
plugins. The plugin manager is built on first use by :func:`plugin_manager`, never at import.

Every hook is synchronous; implementations should return quickly. Exceptions raised by the
observer hooks (``taskless_enqueued``, ``taskless_delivery_*``, ``taskless_attempt_finished``)
are logged to the ``taskless.hooks`` logger and do not fail the operation they observe: a job
that was enqueued stays enqueued even if a metrics plugin breaks.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Final

import pluggy

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .models import Job, JobMeta
    from .transport import TransportFactory

#: The pluggy project name, the entry point group and the hook name prefix.
PROJECT = "taskless"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations: ``@hookimpl def taskless_enqueued(queue, job): ...``
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Modules registered as plugins by every plugin manager, under their module name.
BUILTIN_PLUGINS = ("taskless.core.http",)

logger = logging.getLogger("taskless.hooks")


class TasklessHookspecs:
    """The hooks a Taskless plugin may implement. Implementations may take any subset of the
    parameters, by name."""

    @hookspec
    def taskless_transports(self) -> dict[str, TransportFactory]:
        """Offer transports, keyed by URL scheme (``"http"``, ``"memory"``, ...).

        :func:`taskless.core.transport.transport_for` picks the factory for the scheme of
        ``TASKLESS_URL`` and calls it as ``factory(url, settings, asynchronous=...)``; it must
        return a :class:`~taskless.core.transport.Transport` when ``asynchronous`` is false and
        an :class:`~taskless.core.transport.AsyncTransport` when it is true (one object may be
        both). When several plugins offer the same scheme, the one registered last wins, so a
        plugin can replace a built-in transport.

        :return: a mapping of lower-case scheme to transport factory.
        """
        raise NotImplementedError

    @hookspec
    def taskless_enqueued(self, queue: str, job: Job[Any]) -> None:
        """Called in the app after the job server accepted an ``enqueue`` (create or replace).

        :param queue: the name of the queue.
        :param job: the job as the job server stored it (typed payload already parsed).
        """

    @hookspec
    def taskless_delivery_received(self, queue: str, meta: JobMeta) -> None:
        """Called in the app when a delivery passed signature verification, before its handler
        runs.

        :param queue: the name of the queue the delivery is for.
        :param meta: the delivery's job name, run id, attempt, scheduled time and headers.
        """

    @hookspec
    def taskless_delivery_handled(
        self,
        queue: str,
        meta: JobMeta,
        status: int,
        error: BaseException | None,
        duration: float,
    ) -> None:
        """Called in the app after a delivery's handler finished, before the response is sent.

        :param queue: the name of the queue the delivery is for.
        :param meta: the delivery's job name, run id, attempt, scheduled time and headers.
        :param status: the HTTP status the receiver answers with (200, 422, 500, 503, ...).
        :param error: the exception the handler raised (a ``RetryLater`` included), or ``None``.
        :param duration: seconds spent in the handler (payload validation included).
        """

    @hookspec
    def taskless_attempt_finished(
        self,
        queue: str,
        name: str,
        run_id: str,
        attempt: int,
        status: int | None,
        error: str | None,
        duration: float,
    ) -> None:
        """Called in the job server after each delivery attempt, successful or not.

        :param queue: the name of the queue.
        :param name: the name of the job.
        :param run_id: the occurrence's run id (the ``webhook-id``; the same across retries).
        :param attempt: the attempt number, 1-based.
        :param status: the HTTP status the app answered, or ``None`` when no response came
            (timeout, connection error).
        :param error: why the attempt failed, or ``None`` when it succeeded (a 2xx response).
        :param duration: seconds from sending the request to the end of the response.
        """


def build_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A new plugin manager with the hookspecs, the built-in plugins and, unless
    ``load_entry_points`` is false, the plugins of the ``taskless`` entry point group.

    Most code wants the shared one: :func:`plugin_manager`.

    :raises ConfigurationError: an entry point could not be loaded; the message names it.
    :raises pluggy.PluginValidationError: a plugin implements a hook that does not exist, or
        with parameters the hook does not have.
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(TasklessHookspecs)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        for entry_point in entry_points(group=PROJECT):
            if manager.has_plugin(entry_point.name) or manager.is_blocked(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise ConfigurationError(
                    f"could not load the Taskless plugin {entry_point.name!r} "
                    f"({entry_point.value}) of the {PROJECT!r} entry point group: {exc}; "
                    f"fix or uninstall the package that provides it"
                ) from exc
            manager.register(plugin, name=entry_point.name)
    manager.check_pending()
    return manager


_manager: pluggy.PluginManager | None = None
_manager_lock = threading.Lock()


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built (and entry points loaded) on the first call."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = build_plugin_manager()
    return _manager


def register(plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` with the shared plugin manager; returns its name.

    :raises ValueError: the plugin, or another under the same name, is already registered.
    :raises pluggy.PluginValidationError: the plugin implements a hook that does not exist
        (a misspelt name, say) or with parameters the hook does not have.
    """
    manager = plugin_manager()
    registered_name = manager.register(plugin, name=name)
    if registered_name is None:  # pluggy returns None only for blocked names
        raise ValueError(f"the plugin name {name!r} is blocked")
    try:
        manager.check_pending()
    except pluggy.PluginValidationError:
        manager.unregister(name=registered_name)
        raise
    return registered_name


def unregister(plugin: object | None = None, name: str | None = None) -> None:
    """Remove a plugin, given the object or the name it was registered under."""
    plugin_manager().unregister(plugin, name=name)


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` for the duration of a ``with`` block (handy in tests)."""
    registered_name = register(plugin, name)
    try:
        yield registered_name
    finally:
        unregister(name=registered_name)


def notify(hook_name: str, **kwargs: Any) -> None:
    """Call the observer hook ``hook_name`` with ``kwargs``; log and swallow its errors.

    Observers must not turn a successful operation into a failure (a retried ``enqueue`` of
    an unnamed job would create a second job), hence the swallowing.
    """
    if hook_name not in _HOOK_NAMES:
        raise ValueError(f"there is no Taskless hook named {hook_name!r}")
    try:
        caller = getattr(plugin_manager().hook, hook_name)
        if caller.get_hookimpls():  # nobody observes: nothing to call
            caller(**kwargs)
    except Exception:
        logger.exception("a Taskless plugin failed in %s", hook_name)


_HOOK_NAMES: Final = frozenset(
    name for name in vars(TasklessHookspecs) if name.startswith(f"{PROJECT}_")
)
