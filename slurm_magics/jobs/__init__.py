"""The futures and what resolves them: the engine thread, ``Job``/``JobArray``, gather,
the poller (one squeue per tick), how a job ends, retries, the registry and ``Cluster``.

Imports only ``core``, ``transport`` and ``scheduler``; presentations reach the model through
the hooks in ``job.front_ends``, filled in by the package root."""

__all__: list[str] = []
