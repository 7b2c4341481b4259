"""Two processes with torchrun on CPU (gloo): one tiny PIQ epoch, checkpoints written once."""

import json
import os
import socket
import subprocess
import sys

from conftest import HPARAMS, REPO_ROOT


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_on_cpu(tiny_pretrained, tmp_path):
    folder = tmp_path / "ddp"
    overrides = list(tiny_pretrained["overrides"])
    at = overrides.index("--nmf_decoder_path")
    del overrides[at : at + 2]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU even where a GPU exists
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(REPO_ROOT / "recipes" / "train_piq.py"), str(HPARAMS / "piq.yaml"),
        "--distributed_backend=gloo", "--output_folder", str(folder), "--K", "30", *overrides,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SyncBatchNorm" not in result.stderr
    # channels-last parameters on CPU: DDP's gradient buckets must still match them
    assert "Grad strides do not match" not in result.stderr
    checkpoints = list((folder / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1  # written once, by the main process
    assert (folder / "train_log.txt").read_text().count("epoch: 1,") == 1
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert stats["fid_in"] == stats["fid_in"]
