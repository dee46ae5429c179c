"""The Python front end: ``connect()`` and the default cluster, ``@task``,
``SlurmExecutor``, ``FileArray``/``FileValue``, and the history (``jobs()``, ``attach``,
``cleanup``)."""

__all__: list[str] = []
