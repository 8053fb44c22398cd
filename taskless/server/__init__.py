"""The Taskless job server: stores jobs and delivers them as signed HTTP POSTs.

* :mod:`taskless.server.store` - the :class:`~taskless.server.store.Store` interface and the
  SQLite store
* :mod:`taskless.server.dispatcher` - claims due jobs and delivers them
* :mod:`taskless.server.app` - :func:`~taskless.server.app.create_app`, the HTTP API
* :mod:`taskless.server.runner` - serve an app with uvicorn on a loopback port
* :mod:`taskless.server.cli` - the ``taskless`` command

Needs the ``server`` extra: ``pip install 'taskless[server]'``. Importing this package imports
nothing heavy; the modules above import their dependencies.
"""
