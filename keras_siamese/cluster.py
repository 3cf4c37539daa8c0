"""Training on several workers: the cluster a TF_CONFIG names, and a local one started by hand.

`keras-siamese train` run with a `TF_CONFIG` in its environment (as Kubeflow's
TFJob or Vertex AI set it) is one worker of that cluster; `keras-siamese train
--workers N` starts N such workers on free localhost ports
(`run_local_workers`). Only the chief writes what users keep (`ClusterTask.is_chief`).
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from keras_siamese.checks import check_integer

_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 10


@dataclass(frozen=True)
class ClusterTask:
    """This process's task in a cluster: `cluster` maps job names to `host:port` lists.

    Example:
    >>> task = ClusterTask({"worker": ["localhost:2222", "localhost:2223"]}, "worker", 1)
    >>> task.address, task.is_chief, task.num_workers
    ('localhost:2223', False, 2)
    """

    cluster: dict
    task_type: str
    task_index: int

    @property
    def address(self):
        return self.cluster[self.task_type][self.task_index]

    @property
    def num_workers(self):
        """Every task that trains (TensorFlow's "chief" and "worker" jobs)."""
        return sum(len(self.cluster.get(job, ())) for job in ("chief", "worker"))

    @property
    def is_chief(self):
        """TensorFlow's rule: the "chief" task if the cluster has one, else worker 0."""
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self):
        return f"{self.task_type} {self.task_index} ({self.address})"


def cluster_task(environ=None):
    """The task `TF_CONFIG` names, checked; `None` without a `TF_CONFIG`.

    A `TF_CONFIG` that is not JSON, names no cluster or no task, names a task the
    cluster does not have, or whose own port is taken on this machine is a
    `ValueError` that says so.

    Example:
    >>> cluster_task({"TF_CONFIG": '{"cluster": {"worker": ["localhost:0"]}, "task": {"type": "worker", "index": 0}}'})
    ClusterTask(cluster={'worker': ['localhost:0']}, task_type='worker', task_index=0)
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {text[:80]!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG names no cluster (a 'cluster' of job name -> addresses): {text[:80]!r}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f"TF_CONFIG names no task (a 'task' with 'type' and 'index'): {text[:80]!r}")
    addresses = cluster.get(task["type"])
    index = task["index"]
    if not isinstance(addresses, list) or not isinstance(index, int) or not 0 <= index < len(addresses):
        raise ValueError(f"TF_CONFIG's task {task['type']} {index} is not in its cluster {cluster}.")
    found = ClusterTask(cluster, task["type"], index)
    _check_port_free(found)
    return found


def _check_port_free(task):
    host, _, port = task.address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"TF_CONFIG's address for {task.task_type} {task.task_index} has no port: {task.address!r}")
    with socket.socket() as probe:
        try:
            probe.bind(("", int(port)))
        except OSError as error:
            raise ValueError(f"TF_CONFIG's address for this task, {task.address}, is taken: {error.strerror}.") from None


def connect(task, timeout_seconds):
    """A `MultiWorkerMirroredStrategy` for `task`'s cluster, once every worker has joined.

    TensorFlow waits for the other workers without a limit; if they have not all
    joined after `timeout_seconds`, this process prints one line naming them and
    exits with status 2 (the wait cannot be interrupted from Python).

    Example:
    >>> strategy = connect(cluster_task(), timeout_seconds=120)  # doctest: +SKIP
    """
    import tensorflow as tf

    others = [address for job in ("chief", "worker") for address in task.cluster.get(job, ()) if address != task.address]

    def give_up():
        print(
            f"error: {task.name} could not reach the other workers ({', '.join(others)}) within "
            f"{timeout_seconds} s; start every worker of the cluster, or raise --cluster-timeout.",
            file=sys.stderr, flush=True,
        )
        os._exit(2)

    watchdog = threading.Timer(timeout_seconds, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.cancel()


@contextlib.contextmanager
def worker_backup_dir(backup_dir, task):
    """The directory this worker gives `keras.callbacks.BackupAndRestore`.

    The chief (or a process outside any cluster: `task=None`) backs up to
    `backup_dir`. Every other worker backs up to a temporary directory, removed
    on exit, that starts as a copy of the chief's backup: a relaunched cluster
    resumes every worker from the same step, and only the chief writes what users
    keep (`backup_dir` must be on storage every worker reads).

    Example:
    >>> with worker_backup_dir("runs/backup", cluster_task()) as directory:  # doctest: +SKIP
    ...     model.fit(batches, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(directory)])
    """
    if task is None or task.is_chief:
        yield backup_dir
        return
    scratch = tempfile.mkdtemp(prefix="keras-siamese-worker-")
    try:
        own = os.path.join(scratch, "backup")
        if os.path.isdir(backup_dir):
            shutil.copytree(backup_dir, own)
        yield own
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def local_cluster(num_workers):
    """`TF_CONFIG` values for `num_workers` workers on free localhost ports.

    Example:
    >>> configs = local_cluster(2)
    >>> [json.loads(config)["task"]["index"] for config in configs]
    [0, 1]
    """
    num_workers = check_integer(num_workers, "workers")
    sockets = [socket.socket() for _ in range(num_workers)]
    try:
        for probe in sockets:  # all bound at once, so the ports differ
            probe.bind(("localhost", 0))
        addresses = [f"localhost:{probe.getsockname()[1]}" for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        for index in range(num_workers)
    ]


def run_local_workers(command, num_workers, rerun_hint=""):
    """Runs `command` (an argument list) as `num_workers` local workers; returns an exit status.

    Each worker gets its own `TF_CONFIG`; worker 0 (the chief) prints to this
    process's output, the others to temporary logs. When a worker ends with a
    non-zero status or a signal, the others are stopped and one line names it
    (with the last lines of its log when it is not the chief). Returns 0 when all
    finish, 2 when a worker refused its input (status 2), 1 otherwise.

    Example:
    >>> run_local_workers([sys.executable, "-c", "pass"], 2)
    0
    """
    workers = []
    with tempfile.TemporaryDirectory(prefix="keras-siamese-workers-") as log_dir, contextlib.ExitStack() as logs:
        for index, tf_config in enumerate(local_cluster(num_workers)):
            log = None if index == 0 else logs.enter_context(open(os.path.join(log_dir, f"worker{index}.log"), "w+"))
            process = subprocess.Popen(
                command, env={**os.environ, "TF_CONFIG": tf_config},
                stdout=log, stderr=None if log is None else subprocess.STDOUT,
            )
            workers.append((index, process, log))
        try:
            failed = _first_failure(workers)
        finally:
            _stop(process for _, process, _ in workers)  # before the report, so that it is the last line
        if failed is None:
            return 0
        index, process, log = failed
        _report(index, process, log, rerun_hint)
        return 2 if process.returncode == 2 else 1


def _first_failure(workers):
    """Waits until every worker succeeded (None) or one failed (that worker)."""
    while True:
        failed = [(index, process, log) for index, process, log in workers if process.poll()]
        if failed:
            # A killed worker's peers fail soon after it: report the killed one when both are seen.
            return min(failed, key=lambda worker: (worker[1].returncode > 0, worker[0]))
        if all(process.poll() == 0 for _, process, _ in workers):
            return None
        time.sleep(_POLL_SECONDS)


def _report(index, process, log, rerun_hint):
    if log is not None:
        log.flush()
        log.seek(0)
        tail = log.read().splitlines()[-5:]
        if tail:
            print("\n".join(f"[worker {index}] {line}" for line in tail), file=sys.stderr)
    status = process.returncode
    how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
    print(f"error: worker {index} (pid {process.pid}) {how}; the other workers were stopped.{rerun_hint}",
          file=sys.stderr, flush=True)


def _stop(processes):
    processes = [process for process in processes if process.poll() is None]
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
