"""torchrun on CPU (gloo, 2 processes): the training recipe, eval.py and `audio-interpret`.

One torchrun launch runs the three commands' `main` in turn (tests/integration/torchrun_chain.py:
a launch costs about 13 s before any work); each test reads its command's outcome.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import HPARAMS, REPO_ROOT, with_flag
from torchrun_chain import free_port

N_FILES = 3


@pytest.fixture(scope="module")
def torchrun(tiny_pretrained, tiny_piq, tmp_path_factory):
    """One launch: one tiny PIQ epoch, eval.py on tiny_piq at batch 1, `audio-interpret` on
    3 files and a bad one. {"folder", "result", "outcome" (per rank), "files", "bad", ...}."""
    import soundfile as sf
    import torch

    root = tmp_path_factory.mktemp("torchrun")
    overrides = list(tiny_pretrained["overrides"])
    at = overrides.index("--nmf_decoder_path")
    del overrides[at : at + 2]
    train_argv = [str(HPARAMS / "piq.yaml"), "--distributed_backend=gloo", "--output_folder",
                  str(root / "ddp"), "--K", "30", *overrides]  # fmt: skip
    # the random masks (drawn per clip) and one captum baseline: the other baselines take the
    # same path through the shards; 2 report clips: one from each process
    eval_argv = with_flag(tiny_piq["argv"], "--batch_size", 1) + [
        "--pretrained_interpreter", str(tiny_piq["folder"]), "--baselines", "random,saliency",
        "--n_report_clips", "2"]  # fmt: skip
    files = []
    for i in range(N_FILES):
        path = root / f"clip{i}.wav"
        sf.write(path, (0.1 * torch.randn(16000 + 2000 * i)).numpy(), 16000)
        files.append(str(path))
    bad = root / "not_audio.wav"
    bad.write_bytes(b"\x00garbage" * 10)
    files.insert(1, str(bad))
    plan = {
        "results": str(root),
        "steps": [
            {"name": "train", "module": "recipes.train_piq", "argv": train_argv},
            {"name": "eval", "module": "recipes.eval",
             "argv": eval_argv + ["--distributed_backend=gloo", "--eval_folder", str(root / "two")]},
            {"name": "interpret", "module": "recipes.interpret_files",
             "argv": [*files, "--interpreter", str(tiny_piq["folder"] / "inference"), "--out", str(root / "out")]},
        ],
    }  # fmt: skip
    (root / "plan.json").write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU even where a GPU exists
    env["TMPDIR"] = str(root)  # torchrun's own torchelastic_* folder goes with the test's files
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
        str(REPO_ROOT / "tests" / "integration" / "torchrun_chain.py"), str(root / "plan.json"),
    ]  # fmt: skip
    launch = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = launch.communicate(timeout=240)
    except subprocess.TimeoutExpired:  # a hung collective: the workers go too, not only torchrun
        os.killpg(launch.pid, signal.SIGKILL)
        stdout, stderr = launch.communicate()
    result = subprocess.CompletedProcess(command, launch.returncode, stdout, stderr)
    outcome = [json.loads((root / f"rank{rank}.json").read_text()) for rank in (0, 1)
               if (root / f"rank{rank}.json").is_file()]  # fmt: skip
    return {"root": root, "result": result, "outcome": outcome, "files": files, "bad": str(bad),
            "eval_argv": eval_argv}  # fmt: skip


def step(torchrun, name):
    """The step's outcome on both processes, after checking that the launch itself ended well."""
    result = torchrun["result"]
    # a process that exits holding its gloo group can abort in teardown: torchrun then fails
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(torchrun["outcome"]) == 2, result.stderr[-3000:]
    for rank, outcome in enumerate(torchrun["outcome"]):
        assert outcome[name]["error"] is None, (rank, outcome[name]["error"])
    return [outcome[name]["status"] for outcome in torchrun["outcome"]]


def test_torchrun_two_processes_on_cpu(torchrun):
    """One tiny PIQ epoch: no SyncBatchNorm, checkpoints written once, by the main process."""
    assert step(torchrun, "train") == [0, 0]
    stderr, folder = torchrun["result"].stderr, torchrun["root"] / "ddp"
    assert "SyncBatchNorm" not in stderr
    # channels-last parameters on CPU: DDP's gradient buckets must still match them
    assert "Grad strides do not match" not in stderr
    checkpoints = list((folder / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1  # written once, by the main process
    assert (folder / "train_log.txt").read_text().count("epoch: 1,") == 1
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert stats["fid_in"] == stats["fid_in"]


def test_torchrun_eval_shards_the_clips_and_equals_one_process(torchrun, tmp_path):
    """eval.py under torchrun (2 CPU processes): each scores its batches, the main one
    gathers; the figures equal a single-process run on the same clips."""
    from recipes import eval as eval_recipe

    step(torchrun, "eval")
    # 3 test clips at batch 1: batches 0 and 2 on rank 0, batch 1 on rank 1
    single = eval_recipe.main(torchrun["eval_argv"] + ["--eval_folder", str(tmp_path / "one")])
    sharded = json.loads((torchrun["root"] / "two" / "metrics.json").read_text())
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
    # every clip's row once, in the test set's order, and the per-class means
    one_csv = (tmp_path / "one" / "per_clip.csv").read_text().splitlines()
    two_csv = (torchrun["root"] / "two" / "per_clip.csv").read_text().splitlines()
    assert [line.split(",")[:4] for line in two_csv] == [line.split(",")[:4] for line in one_csv]
    assert sharded["by_class"].keys() == single["by_class"].keys()
    for label, entry in single["by_class"].items():
        assert sharded["by_class"][label]["n"] == entry["n"]
        for metric, value in entry[single["interpreter"]].items():
            assert sharded["by_class"][label][single["interpreter"]][metric] == pytest.approx(value, abs=1e-5)


def test_torchrun_command_deals_out_the_files(torchrun):
    """`audio-interpret` under torchrun (2 CPU processes): every file explained once,
    one predictions.json, the bad file reported, exit status 1 on both processes."""
    assert step(torchrun, "interpret") == [1, 1]
    stdout, stderr = torchrun["result"].stdout, torchrun["result"].stderr
    assert "not_audio.wav" in stderr, stderr[-3000:]
    out, files, bad = torchrun["root"] / "out", torchrun["files"], torchrun["bad"]
    predictions = json.loads((out / "predictions.json").read_text())
    good = [f for f in files if f != bad]
    assert list(predictions["files"]) == good and list(predictions["errors"]) == [bad]
    for i in range(N_FILES):
        assert (out / f"clip{i}_interpretation.wav").is_file() and (out / f"clip{i}.png").is_file()
    for path in good:  # each file explained by one process only
        assert stdout.count(f"{path}: ") == 1, stdout
