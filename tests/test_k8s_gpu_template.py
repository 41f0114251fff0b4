"""deploy/kubernetes-gpu-base-job-template.json, the README's Kubernetes work pool with a GPU request: the
default template of the installed Prefect's kubernetes worker with only our additions (so it cannot drift
from the Prefect in the lock), accepted by a real Prefect server through the README's command. The
kubernetes worker itself (prefect-kubernetes) is not installed: nothing here runs a pod."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from prefect_server import PREFECT, api, local_prefect_server

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "kubernetes-gpu-base-job-template.json"


def _prefect_default() -> dict:
    """The kubernetes worker's default template in the worker metadata the installed Prefect ships with
    (its server's copy for when the online registry cannot be reached; read here without a server)."""
    import prefect.server.api.collections as collections

    views = Path(collections.__file__).parent / "collections_data" / "views" / "aggregate-worker-metadata.json"
    return json.loads(views.read_text())["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]


@pytest.mark.timeout(30)
def test_the_gpu_template_is_prefects_default_plus_a_gpu_request_and_shared_memory():
    ours = json.loads(TEMPLATE.read_text())
    container = ours["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert ours["variables"]["properties"]["gpu_count"]["type"] == "integer"
    # DataLoader workers and NCCL pass tensors through /dev/shm, which a pod limits to 64 MiB by default.
    assert container["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]

    stripped = copy.deepcopy(ours)
    pod = stripped["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    del pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], pod["containers"][0]["volumeMounts"]
    assert pod.pop("volumes") == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    del stripped["variables"]["properties"]["gpu_count"]
    assert stripped == _prefect_default()


@pytest.mark.slow  # the local server starts in 15-35 s here
@pytest.mark.timeout(300)
def test_a_prefect_server_takes_the_gpu_template_as_a_kubernetes_work_pool(tmp_path):
    server = local_prefect_server()
    env = server.env()
    pool = "avssl-k8s-gpu-test"
    created = subprocess.run([*PREFECT, "work-pool", "create", pool, "--type", "kubernetes",
                              "--base-job-template", str(TEMPLATE), "--overwrite"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200)
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        stored = api(server.url, f"/work_pools/{pool}")
        assert stored["type"] == "kubernetes"
        assert stored["base_job_template"] == json.loads(TEMPLATE.read_text())
    finally:
        subprocess.run([*PREFECT, "work-pool", "delete", pool], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=100)
