"""TF_CONFIG read and checked; local workers started, watched and reported (plain Python workers:
the launcher's logic, not TensorFlow's, is under test here)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from keras_siamese.cluster import (
    ClusterTask, check_port_free, cluster_task, local_cluster, run_local_workers, run_workers, worker_backup_dir,
)
from keras_siamese.cli import main


def _tf_config(cluster, task_type="worker", index=0):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_the_chief_is_the_chief_task_or_else_worker_0():
    workers = {"worker": ["h:1", "h:2"]}
    assert [ClusterTask(workers, "worker", index).is_chief for index in (0, 1)] == [True, False]
    with_chief = {"chief": ["h:0"], "worker": ["h:1"]}
    assert ClusterTask(with_chief, "chief", 0).is_chief and not ClusterTask(with_chief, "worker", 0).is_chief
    assert ClusterTask(with_chief, "worker", 0).num_workers == 2


def test_no_tf_config_is_no_cluster_and_a_good_one_is_read():
    assert cluster_task({}) is None
    (config,) = local_cluster(1)
    task = cluster_task({"TF_CONFIG": config})
    assert task.task_type == "worker" and task.task_index == 0 and task.address.startswith("localhost:")


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}}', "TF_CONFIG names no task"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG names no cluster"),
        ('["worker"]', "TF_CONFIG names no cluster"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}',
         "task worker 1 is not in its cluster"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "has no port"),
    ],
)
def test_a_tf_config_that_cannot_run_is_a_value_error_saying_why(tf_config, message):
    with pytest.raises(ValueError, match=message):
        cluster_task({"TF_CONFIG": tf_config})


def test_a_tf_config_whose_own_address_is_taken_says_so():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        task = cluster_task(_tf_config({"worker": [f"localhost:{port}", "localhost:1"]}))  # reading binds nothing
        with pytest.raises(ValueError, match=f"this task, localhost:{port}, is taken"):
            check_port_free(task)


def test_local_clusters_name_distinct_free_ports_and_one_task_each():
    configs = [json.loads(config) for config in local_cluster(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(config["cluster"]["worker"] == addresses for config in configs)
    assert [config["task"] for config in configs] == [{"type": "worker", "index": index} for index in range(3)]
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        local_cluster(0)


WORKER = """
import json, os, signal, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
print(f"worker {index} started", flush=True)
if index == int(sys.argv[1]):
    time.sleep(0.5)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(int(sys.argv[2]))
time.sleep(float(sys.argv[3]))
"""


def test_workers_that_all_finish_give_status_0_and_the_chief_prints_here(capfd):
    assert run_local_workers([sys.executable, "-c", WORKER, "-1", "0", "0"], 3) == 0
    printed = capfd.readouterr().out
    assert "worker 0 started" in printed and "worker 1 started" not in printed  # the others print to their logs


@pytest.mark.parametrize("how, status, said", [("kill", 1, "was killed by SIGKILL"), ("3", 1, "exited with status 3"),
                                               ("2", 2, "exited with status 2")])
def test_a_failed_worker_stops_the_others_and_is_one_line_naming_it(how, status, said, capfd, tmp_path):
    token = str(tmp_path)  # in every worker's command line
    assert run_local_workers([sys.executable, "-c", WORKER, "1", how, "600", token], 3, rerun_hint=" Rerun.") == status
    error = capfd.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: worker 1 (pid ") and said in error[-1], error
    assert error[-1].endswith("Rerun.") == (status == 1)  # status 2: the worker's own line says what to change
    assert error[-2] == "[worker 1] worker 1 started"  # the end of its log
    assert subprocess.run(["pgrep", "-f", token], capture_output=True).stdout == b""  # the others were stopped


def test_a_worker_that_does_not_join_in_time_stops_them_all_with_one_line_and_status_2(capfd, tmp_path):
    configs = local_cluster(2)
    token = str(tmp_path)
    assert run_workers([sys.executable, "-c", WORKER, "-1", "0", "600", token], configs, timeout_seconds=1) == 2
    addresses = json.loads(configs[0])["cluster"]["worker"]
    assert capfd.readouterr().err.strip().splitlines()[-1] == (
        f"error: worker 0 ({addresses[0]}) could not reach the other workers ({addresses[1]}) within 1 s; "
        "start every worker of the cluster, or raise --cluster-timeout."
    )
    assert subprocess.run(["pgrep", "-f", token], capture_output=True).stdout == b""


def test_only_the_chief_backs_up_where_users_look_the_others_start_from_a_copy(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"weights")
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    with worker_backup_dir(str(backup), ClusterTask(cluster, "worker", 0)) as chief_dir:
        assert chief_dir == str(backup)
    with worker_backup_dir(str(backup), None) as alone_dir:
        assert alone_dir == str(backup)
    with worker_backup_dir(str(backup), ClusterTask(cluster, "worker", 1)) as other_dir:
        assert other_dir != str(backup) and open(os.path.join(other_dir, "latest.weights.h5"), "rb").read() == b"weights"
    assert not os.path.exists(other_dir) and (backup / "latest.weights.h5").read_bytes() == b"weights"


@pytest.mark.parametrize(
    "arguments, environment, message",
    [
        (["--workers", "0"], {}, "workers must be a positive integer, got 0"),
        (["--workers", "3"], {}, "global batch of 64 rows (--loss semihard) does not split evenly over 3 workers"),
        (["--workers", "2"], _tf_config({"worker": ["localhost:1", "localhost:2"]}, index=1),
         "TF_CONFIG already names a cluster of 2 workers; leave out workers"),
        ([], {"TF_CONFIG": "{not json"}, "TF_CONFIG is not JSON"),
        ([], {"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}}'}, "TF_CONFIG names no task"),
        (["--cluster-timeout", "0"], {}, "cluster_timeout must be a positive integer, got 0"),
    ],
)
def test_bad_cluster_settings_are_one_argparse_error_line(arguments, environment, message, capsys, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *arguments])
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0], error_lines


def test_a_worker_whose_peers_never_come_is_one_line_and_status_2_after_the_timeout(tmp_path):
    (config, _) = local_cluster(2)  # worker 1 is never started
    finished = subprocess.run(
        ["keras-siamese", "train", "--cluster-timeout", "3", "--output-dir", str(tmp_path / "run")],
        env={**os.environ, "TF_CONFIG": config}, capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 2, finished.stderr
    peer = json.loads(config)["cluster"]["worker"][1]
    assert finished.stderr.strip().splitlines()[-1] == (
        f"error: worker 0 ({json.loads(config)['cluster']['worker'][0]}) could not reach the other workers ({peer}) "
        "within 3 s; start every worker of the cluster, or raise --cluster-timeout."
    )
    assert not (tmp_path / "run").exists()  # nothing written, nothing exported
