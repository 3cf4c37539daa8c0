"""Training on several workers: the cluster a TF_CONFIG names, and a local one started by hand.

`keras-siamese train` run with a `TF_CONFIG` in its environment (as Kubeflow's
TFJob or Vertex AI set it) is one worker of that cluster; `keras-siamese train
--workers N` starts N such workers on free localhost ports
(`run_local_workers`). Only the chief writes what users keep (`ClusterTask.is_chief`).
"""

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from keras_siamese.checks import check_integer

_POLL_SECONDS = 0.2
_JOINED_FD = "KERAS_SIAMESE_JOINED_FD"  # where a worker started by run_workers says it joined


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
    def peers(self):
        """The addresses of every other task that trains."""
        return [address for job in ("chief", "worker") for address in self.cluster.get(job, ()) if address != self.address]

    @property
    def name(self):
        return f"{self.task_type} {self.task_index} ({self.address})"


def cluster_task(environ=None):
    """The task `TF_CONFIG` names, checked; `None` without a `TF_CONFIG`.

    A `TF_CONFIG` that is not JSON, names no cluster or no task, or names a task
    the cluster does not have is a `ValueError` that says so. Reading it binds
    nothing (`check_port_free` does).

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
    if not found.address.rpartition(":")[2].isdigit():
        raise ValueError(f"TF_CONFIG's address for {found.task_type} {index} has no port: {found.address!r}")
    return found


def check_port_free(task):
    """Raises `ValueError` when `task`'s own port is taken on this machine.

    Example:
    >>> check_port_free(cluster_task())  # doctest: +SKIP
    """
    port = task.address.rpartition(":")[2]
    with socket.socket() as probe:
        try:
            probe.bind(("", int(port)))
        except OSError as error:
            raise ValueError(f"TF_CONFIG's address for this task, {task.address}, is taken: {error.strerror}.") from None


def connect():
    """A `MultiWorkerMirroredStrategy` for the cluster `TF_CONFIG` names, once every worker joined.

    TensorFlow waits for the other workers without a limit, and the wait cannot be
    interrupted from Python; a process started by `run_workers` tells it when it has
    joined, so that `run_workers` can give up after its timeout.

    Example:
    >>> strategy = connect()  # doctest: +SKIP
    """
    import tensorflow as tf

    check_port_free(cluster_task())
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    joined_fd = os.environ.get(_JOINED_FD)
    if joined_fd is not None:
        os.write(int(joined_fd), b"joined")
        os.close(int(joined_fd))
    return strategy


@contextlib.contextmanager
def worker_backup_dir(backup_dir, task):
    """The directory this worker gives `keras.callbacks.BackupAndRestore`.

    The chief (or a process outside any cluster: `task=None`) backs up to
    `backup_dir`. Every other worker backs up to a temporary directory, removed
    on exit (or by its next run, after a kill), that starts as a copy of the chief's backup: a relaunched cluster
    resumes every worker from the same step, and only the chief writes what users
    keep (`backup_dir` must be on storage every worker reads).

    Example:
    >>> with worker_backup_dir("runs/backup", cluster_task()) as directory:  # doctest: +SKIP
    ...     model.fit(batches, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(directory)])
    """
    if task is None or task.is_chief:
        yield backup_dir
        return
    # One name per task and backup: a worker that was killed leaves it, its next run removes it.
    digest = hashlib.sha1(os.path.abspath(backup_dir).encode()).hexdigest()[:12]
    scratch = os.path.join(tempfile.gettempdir(), f"keras-siamese-{task.task_type}{task.task_index}-{digest}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
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


def is_watched():
    """Whether this process is a worker that `run_workers` started (and watches).

    Example:
    >>> is_watched()
    False
    """
    return _JOINED_FD in os.environ


def run_local_workers(command, num_workers, timeout_seconds=120, rerun_hint=""):
    """Runs `command` (an argument list) as `num_workers` workers on free localhost ports
    (`run_workers` with `local_cluster(num_workers)`); returns an exit status.

    Example:
    >>> run_local_workers(["keras-siamese", "train", "--epochs", "1"], 2)  # doctest: +SKIP
    0
    """
    return run_workers(command, local_cluster(num_workers), timeout_seconds, rerun_hint)


def run_workers(command, tf_configs, timeout_seconds=120, rerun_hint=""):
    """Runs `command` once per `TF_CONFIG` in `tf_configs`, watches the workers, returns an exit status.

    The first worker prints to this process's output, the others to temporary logs.
    A worker that has not joined its cluster (`connect`) within `timeout_seconds`,
    or that ends with a non-zero status or a signal, stops them all, and one line
    names it (after the last lines of its log, for the others). Returns 0 when every
    worker finishes, 2 when one refused its input or could not join, 1 otherwise.

    Example:
    >>> run_workers([sys.executable, "-c", "pass"], local_cluster(2))
    0
    """
    workers = []
    with tempfile.TemporaryDirectory(prefix="keras-siamese-workers-") as log_dir, contextlib.ExitStack() as stack:
        for index, tf_config in enumerate(tf_configs):
            log = None if index == 0 else stack.enter_context(open(os.path.join(log_dir, f"worker{index}.log"), "w+"))
            joined, tells_joined = os.pipe()
            process = subprocess.Popen(
                command, env={**os.environ, "TF_CONFIG": tf_config, _JOINED_FD: str(tells_joined)},
                stdout=log, stderr=None if log is None else subprocess.STDOUT, pass_fds=(tells_joined,),
            )
            os.close(tells_joined)
            stack.callback(os.close, joined)
            config = json.loads(tf_config)
            task = ClusterTask(config["cluster"], config["task"]["type"], config["task"]["index"])
            workers.append(_Worker(index, process, log, joined, task))
        try:
            failed = _first_failure(workers, time.monotonic() + timeout_seconds)
        finally:
            _stop(worker.process for worker in workers)  # before the report, so that it is the last line
        if failed is None:
            return 0
        _report(failed, timeout_seconds, rerun_hint)
        return 2 if failed.late or failed.process.returncode == 2 else 1


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen
    log: object
    joined_pipe: int
    task: ClusterTask
    joined: bool = False
    late: bool = False  # had not joined when the time was up

    def poll_joined(self):
        if not self.joined and select.select([self.joined_pipe], [], [], 0)[0]:
            self.joined = os.read(self.joined_pipe, 16) == b"joined"  # b"": it ended before joining
        return self.joined


def _first_failure(workers, join_deadline):
    """Waits until every worker succeeded (None) or one failed or did not join in time (that worker)."""
    while True:
        failed = [worker for worker in workers if worker.process.poll()]
        if failed:
            # A killed worker's peers fail soon after it: report the killed one when both are seen.
            return min(failed, key=lambda worker: (worker.process.returncode > 0, worker.index))
        if all(worker.process.poll() == 0 for worker in workers):
            return None
        late = [worker for worker in workers if not worker.poll_joined() and worker.process.poll() is None]
        if late and time.monotonic() > join_deadline:
            late[0].late = True
            return late[0]
        time.sleep(_POLL_SECONDS)


def _report(worker, timeout_seconds, rerun_hint):
    if worker.log is not None:
        worker.log.flush()
        worker.log.seek(0)
        tail = worker.log.read().splitlines()[-5:]
        if tail:
            print("\n".join(f"[worker {worker.index}] {line}" for line in tail), file=sys.stderr)
    task = worker.task
    if worker.late:
        print(f"error: {task.name} could not reach the other workers ({', '.join(task.peers)}) "
              f"within {timeout_seconds} s; start every worker of the cluster, or raise --cluster-timeout.",
              file=sys.stderr, flush=True)
        return
    status = worker.process.returncode
    how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
    hint = "" if status == 2 else rerun_hint  # status 2: the worker's own line says what to change
    print(f"error: {task.task_type} {task.task_index} (pid {worker.process.pid}) {how}; the other workers were stopped."
          f"{hint}", file=sys.stderr, flush=True)


def _stop(processes):
    """Kills the workers still running: what they wrote is complete (atomic files), the rest is lost
    either way, and TensorFlow ignores SIGTERM while it waits for a peer."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
