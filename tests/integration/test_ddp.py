"""Two processes with torchrun on CPU (gloo): one tiny PIQ epoch, checkpoints written once."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import HPARAMS, REPO_ROOT, with_flag


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


def test_torchrun_eval_shards_the_clips_and_equals_one_process(tiny_piq, tmp_path):
    """eval.py under torchrun (2 CPU processes): each scores its batches, the main one
    gathers; the figures equal a single-process run on the same clips."""
    from recipes import eval as eval_recipe

    argv = with_flag(tiny_piq["argv"], "--batch_size", 1) + ["--pretrained_interpreter", str(tiny_piq["folder"])]
    # 3 test clips at batch 1: batches 0 and 2 on rank 0, batch 1 on rank 1
    single = eval_recipe.main(argv + ["--eval_folder", str(tmp_path / "one")])
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={free_port()}", str(REPO_ROOT / "recipes" / "eval.py"), *argv,
        "--distributed_backend=gloo", "--eval_folder", str(tmp_path / "two"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    sharded = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert sharded["n_clips"] == single["n_clips"] == 3
    assert sharded["classifier_check"]["masked_predictions"] == single["classifier_check"]["masked_predictions"]
    for group in ("methods", "references"):
        assert sharded[group].keys() == single[group].keys()
        for method, values in single[group].items():
            for metric, value in values.items():
                if value is None or value != value:
                    assert sharded[group][method][metric] in (None, value), (method, metric)
                else:
                    assert abs(sharded[group][method][metric] - value) <= 1e-5 * max(1.0, abs(value)), (
                        method, metric, sharded[group][method][metric], value)  # fmt: skip
    # the bootstrap intervals (over the same values in another order) and the mean curves too
    assert sharded["intervals"].keys() == single["intervals"].keys()
    for method, intervals in single["intervals"].items():
        for metric, interval in intervals.items():
            for end in ("low", "high"):
                if interval[end] is not None:
                    assert sharded["intervals"][method][metric][end] == pytest.approx(interval[end], abs=1e-5)
    for method, drawn in single["curves"]["methods"].items():
        for kind in ("deletion", "insertion"):
            assert sharded["curves"]["methods"][method][kind] == pytest.approx(drawn[kind], abs=1e-5)
    assert [clip["id"] for clip in sharded["clips"]] == [clip["id"] for clip in single["clips"]]


def test_torchrun_command_deals_out_the_files(tiny_piq, tmp_path):
    """`audio-interpret` under torchrun (2 CPU processes): every file explained once,
    one predictions.json, the bad file reported, exit status 1."""
    import soundfile as sf
    import torch

    files = []
    for i in range(3):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, (0.1 * torch.randn(16000 + 2000 * i)).numpy(), 16000)
        files.append(str(path))
    bad = tmp_path / "not_audio.wav"
    bad.write_bytes(b"\x00garbage" * 10)
    files.insert(1, str(bad))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={free_port()}", str(REPO_ROOT / "recipes" / "interpret_files.py"), *files,
        "--interpreter", str(tiny_piq["folder"] / "inference"), "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode != 0 and "not_audio.wav" in result.stderr, result.stderr[-3000:]
    predictions = json.loads((out / "predictions.json").read_text())
    good = [f for f in files if f != str(bad)]
    assert list(predictions["files"]) == good and list(predictions["errors"]) == [str(bad)]
    for i in range(3):
        assert (out / f"clip{i}_interpretation.wav").is_file() and (out / f"clip{i}.png").is_file()
    for path in good:  # each file explained by one process only
        assert result.stdout.count(f"{path}: ") == 1, result.stdout
