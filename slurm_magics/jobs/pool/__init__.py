"""Worker pools: warm workers inside one allocation, fed tasks over an authenticated socket."""

from .dispatcher import Dispatcher, PoolTask, TaskEvents, WorkerState
from .listener import Listener, WorkerConnection

__all__ = ["Dispatcher", "Listener", "PoolTask", "TaskEvents", "WorkerConnection", "WorkerState"]
