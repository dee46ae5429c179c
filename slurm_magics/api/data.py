"""Large inputs written once: ``sm.FileValue`` and ``sm.FileArray``.

Passing a big object to many tasks pickles it into every task's arguments. Written once
to the cluster instead (the run folder's ``data/``, or a shared folder you choose; sent
once over SSH), tasks receive a small reference and load only what they use: a
``FileArray`` element is one pickled element, or one row of a memory-mapped numpy array.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import posixpath
import secrets
from collections.abc import Iterable, Iterator
from typing import Any, overload

import cloudpickle

from slurm_magics.api.connect import default_cluster
from slurm_magics.core import runner as _runner
from slurm_magics.core.payload import FileReference
from slurm_magics.jobs.cluster import Cluster
from slurm_magics.jobs.engine import engine

__all__ = ["FileArray", "FileArrayItem", "FileValue"]


def _cluster(cluster: Cluster | None) -> Cluster:
    return cluster if cluster is not None else default_cluster()


def _write(cluster: Cluster, files: dict[str, bytes]) -> None:
    for folder in {posixpath.dirname(path) for path in files}:
        engine.call(cluster.transport.make_dirs(folder))
    engine.call(cluster.transport.write_files(files))


class FileValue(FileReference):
    """One object written once to the cluster; tasks given it receive the object."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<FileValue {self.path}>"

    @classmethod
    def from_data(
        cls, obj: Any, path: str | None = None, *, cluster: Cluster | None = None
    ) -> FileValue:
        """Pickle ``obj`` once and write it to ``path`` (default: under the cluster's root)."""
        target = _cluster(cluster)
        data = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(data).hexdigest()[:20]
        path = path or f"{target.root}/data/{digest}.pkl"
        _write(target, {path: data})
        return cls(path)

    def reference(self) -> tuple[str, str, str]:
        """The persistent id the runner resolves."""
        return (_runner.FILE_REF, self.path, "pickle")


class FileArray(FileReference):
    """A sequence written once to the cluster; ``.map(file_array)`` gives each task one element.

    A numpy array is stored as ``.npy`` and memory-mapped on the cluster (a task reads only
    its row); any other sequence as one pickle per element.
    """

    def __init__(self, folder: str, layout: str, length: int) -> None:
        self.folder, self.layout, self._length = folder, layout, length

    def __repr__(self) -> str:
        return f"<FileArray {self.folder} ({self.layout}, {self._length} elements)>"

    @classmethod
    def from_data(
        cls, data: Iterable[Any], folder: str | None = None, *, cluster: Cluster | None = None
    ) -> FileArray:
        """Write ``data`` once, to ``folder`` (default: a new folder under the root).

        Args:
            data: a numpy array (stored as ``.npy``, memory-mapped on the cluster, one row
                per element) or any iterable (one pickle per element).
            folder: a folder on the cluster, shared with the compute nodes.
            cluster: where to write (default: the default cluster).

        Returns:
            A ``FileArray`` of ``len(data)`` elements; ``.map(file_array)`` gives each task
            one element, ``file_array[i]`` one ``FileArrayItem``.

        Raises:
            ClusterError: the files cannot be written there.
        """
        target = _cluster(cluster)
        folder = folder or f"{target.root}/data/array-{secrets.token_hex(6)}"
        if type(data).__module__ == "numpy" and hasattr(data, "shape"):
            import numpy  # noqa: PLC0415  (only for numpy input)

            buffer = io.BytesIO()
            numpy.save(buffer, numpy.asarray(data), allow_pickle=False)
            _write(target, {f"{folder}/data.npy": buffer.getvalue()})
            return cls(folder, "npy", int(data.shape[0]))
        blob, offsets = io.BytesIO(), [0]
        for element in data:
            blob.write(cloudpickle.dumps(element, protocol=pickle.HIGHEST_PROTOCOL))
            offsets.append(blob.tell())
        index = b"".join(_runner.OFFSET.pack(offset) for offset in offsets)
        _write(target, {f"{folder}/items.bin": blob.getvalue(), f"{folder}/items.idx": index})
        return cls(folder, "table", len(offsets) - 1)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> FileArrayItem: ...
    @overload
    def __getitem__(self, index: slice) -> list[FileArrayItem]: ...
    def __getitem__(self, index: int | slice) -> FileArrayItem | list[FileArrayItem]:
        if isinstance(index, slice):
            return [FileArrayItem(self, i) for i in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} is out of range for {self!r}")
        return FileArrayItem(self, index % self._length)

    def __iter__(self) -> Iterator[FileArrayItem]:
        return (FileArrayItem(self, i) for i in range(self._length))

    def reference(self) -> tuple[str, str, str]:
        """The persistent id of the whole sequence."""
        return (_runner.FILE_REF, self.folder, self.layout)


class FileArrayItem(FileReference):
    """One element of a FileArray, loaded on the cluster by the task that receives it."""

    def __init__(self, array: FileArray, index: int) -> None:
        self.array, self.index = array, index

    def __repr__(self) -> str:
        return f"<FileArrayItem {self.index} of {self.array!r}>"

    def reference(self) -> tuple[str, tuple[str, str], int]:
        return (_runner.FILE_ITEM_REF, (self.array.folder, self.array.layout), self.index)
