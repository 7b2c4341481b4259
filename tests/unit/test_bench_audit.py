"""Mutation audit of the speed benchmarks (bench/bench_common.py, bench/run_all.py,
bench/measure.py, bench/long_file_memory.py): the clips/s, ms per clip, ConvTranspose2d
share, peak RSS and "goal met" figures the project quotes.

How expected values are derived:

- timings run on a deterministic clock (`Clock`: `time.perf_counter` / `time.process_time`
  advanced only by the fake callables), so every median, min, share and rate is worked out
  by hand from the listed durations (in the comments);
- `measure.main` runs every computing line of `measure_explain` / `measure_train` on a
  hand-made Brain (`FakeBrain`: explain() spends listed seconds, psi holds two
  ConvTranspose2d layers that spend a known part of it); only the workspace and the
  recipe's Brain construction are replaced;
- run_all's table is read back with an independent fixed-width parser (`_cells`) and
  compared with cells written literally; `_run` runs against a fake `subprocess.run`;
- the 60 / 10 / 10 split is checked against the data set's own meta/esc50.csv (0.5 s clips
  instead of 5 s; the stand-in checkpoints are not built);
- the long file is compared with an independent numpy model of its tone.

Each test names the mutations of the audit it catches.
"""

import csv
import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # run_all.py and measure.py `import bench_common`

import bench_common  # noqa: E402
import long_file_memory  # noqa: E402
import measure  # noqa: E402
import run_all  # noqa: E402

from models.layers import SingleChannelConvTranspose2d  # noqa: E402


class Clock:
    """A deterministic perf_counter / process_time: moves only when `spend` is called."""

    def __init__(self):
        self.wall, self.cpu = 1000.0, 500.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def spend(self, seconds, cpu_per_wall=1.0):
        self.wall += seconds
        self.cpu += cpu_per_wall * seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "process_time", clock.process_time)
    return clock


# ------------------------------------------------------------------------ bench_common


def test_parse_options():
    """Mutations: keep empty names; drop the unknown-name check."""
    assert bench_common.parse_options("") == []
    assert bench_common.parse_options("glibc_malloc,,contiguous") == ["glibc_malloc", "contiguous"]
    with pytest.raises(ValueError, match="bogus"):
        bench_common.parse_options("plain_final,bogus")


def test_apply_process_options(monkeypatch):
    """Mutations: the env value "0" -> "1"; always / never applied."""
    monkeypatch.delenv("KEEP_FREED_MEMORY", raising=False)
    assert bench_common.apply_process_options(["contiguous"]) == []
    assert "KEEP_FREED_MEMORY" not in os.environ
    assert bench_common.apply_process_options(["glibc_malloc"]) == ["glibc_malloc"]
    assert os.environ["KEEP_FREED_MEMORY"] == "0"


def _model_brain():
    psi = torch.nn.Sequential(
        torch.nn.Conv2d(4, 4, 3),  # counted (4 x 4 x 3 x 3)
        torch.nn.ConvTranspose2d(4, 4, 3),  # counted
        torch.nn.Conv2d(4, 4, 1),  # 1 x 1 kernel: not counted
        SingleChannelConvTranspose2d(4, 1, 3),  # (4, 1, 3, 3): not counted; the last layer
        torch.nn.ConvTranspose2d(4, 1, 1),  # already plain: not swapped, not counted
    )
    classifier = torch.nn.ModuleDict({"emb": torch.nn.Conv2d(2, 3, 3)})  # counted
    brain = types.SimpleNamespace(
        modules=torch.nn.ModuleDict({"psi": psi}), classifier_modules=classifier
    )
    brain.modules.to(memory_format=torch.channels_last)
    classifier.to(memory_format=torch.channels_last)
    return brain


def test_apply_model_options_and_settings_on(monkeypatch):
    """Hand count: 3 convolution weights show a layout (see `_model_brain`), all channels-last;
    one SingleChannelConvTranspose2d, one plain ConvTranspose2d. Mutations: swap nothing /
    every one-channel ConvTranspose2d; the shape filter dropped; allocator text inverted.
    (`and not p.is_contiguous()` is redundant behind the shape filter: no test can tell.)"""
    monkeypatch.setenv("KEEP_FREED_MEMORY", "1")
    brain = _model_brain()
    settings = bench_common.settings_on(brain)
    assert settings[:3] == [
        "allocator: keeps freed memory",
        "last layer: ConvTranspose2d, SingleChannelConvTranspose2d",
        "channels-last conv weights: 3/3",
    ]
    assert bench_common.apply_model_options(brain, ["plain_final", "contiguous"]) == [
        "plain_final: 1 layer(s)",
        "contiguous",
    ]
    assert [type(m).__name__ for m in brain.modules["psi"]] == [
        "Conv2d", "ConvTranspose2d", "Conv2d", "ConvTranspose2d", "ConvTranspose2d"
    ]  # fmt: skip
    monkeypatch.setenv("KEEP_FREED_MEMORY", "0")
    assert bench_common.settings_on(brain)[:3] == [
        "allocator: glibc defaults",
        "last layer: ConvTranspose2d",
        "channels-last conv weights: 0/3",
    ]


def test_cut_manifest_keeps_first_sorted_ids_per_class(tmp_path):
    """Mutations: `<` -> `<=`; entries in file order instead of sorted; count not updated."""
    entries = {
        "4-3-A-0": {"class_string": "dog"},
        "4-1-A-1": {"class_string": "cat"},
        "4-2-A-0": {"class_string": "dog"},
        "4-0-A-1": {"class_string": "cat"},
        "4-5-A-0": {"class_string": "dog"},
        "4-4-A-2": {"class_string": "cow"},
    }
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(entries))
    assert bench_common._cut_manifest(path) == 3
    assert sorted(json.loads(path.read_text())) == ["4-0-A-1", "4-2-A-0", "4-4-A-2"]
    path.write_text(json.dumps(entries))
    assert bench_common._cut_manifest(path, per_class=2) == 5
    assert sorted(json.loads(path.read_text())) == ["4-0-A-1", "4-1-A-1", "4-2-A-0", "4-3-A-0", "4-4-A-2"]


def test_prepare_workspace_split_60_10_10(tmp_path, monkeypatch):
    """The split against the data set's own meta/esc50.csv: train every clip of folds 1-3,
    valid / test the first id of each class in fold 4 / 5. Mutations: other folds; the
    valid or test cut dropped; per_class 2; checkpoints not saved for both sizes."""
    real = bench_common.create_synthetic_dataset
    monkeypatch.setattr(
        bench_common, "create_synthetic_dataset", lambda *a, **k: real(*a, **{**k, "duration_s": 0.5})
    )
    saved = []
    monkeypatch.setattr(bench_common, "save_stand_in_checkpoints", lambda root, size: saved.append(size))
    workspace = bench_common.prepare_workspace(tmp_path / "ws")
    assert workspace["counts"] == {"train": 60, "valid": 10, "test": 10}
    assert saved == ["cpu", "full"]
    with open(workspace["data_folder"] / "meta" / "esc50.csv", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    by_fold = {}
    for row in rows:
        by_fold.setdefault(int(row["fold"]), []).append(row)

    def first_per_class(fold):
        firsts = {}
        for row in sorted(by_fold[fold], key=lambda r: int(r["filename"].split("-")[1])):
            firsts.setdefault(row["target"], row["filename"][: -len(".wav")])
        return sorted(firsts.values())

    manifests = {
        split: json.loads(path.read_text()) for split, path in workspace["manifests"].items()
    }
    train = sorted(r["filename"][:-4] for fold in (1, 2, 3) for r in by_fold[fold])
    assert sorted(manifests["train"]) == train
    assert sorted(manifests["valid"]) == first_per_class(4)
    assert sorted(manifests["test"]) == first_per_class(5)
    # reused: the cut manifests stay cut
    assert bench_common.prepare_workspace(tmp_path / "ws")["counts"] == workspace["counts"]


def test_recipe_argv_sizes(tmp_path):
    """The configuration measured. Mutations: K of another method / size; no dictionary for L2I."""
    workspace = {
        "root": tmp_path,
        "data_folder": tmp_path / "data",
        "manifests": {split: tmp_path / f"{split}.json" for split in ("train", "valid", "test")},
    }
    argv = bench_common.recipe_argv("piq", workspace, "full", extra=["--x", 1])

    def value(argv, flag):
        return argv[argv.index(flag) + 1]

    assert (value(argv, "--emb_dim"), value(argv, "--K"), value(argv, "--batch_size")) == ("256", "1024", "8")
    assert "--nmf_decoder_path" not in argv and argv[-2:] == ["--x", "1"]
    argv = bench_common.recipe_argv("l2i", workspace, "cpu")
    assert (value(argv, "--emb_dim"), value(argv, "--K")) == ("32", "100")
    assert value(argv, "--nmf_decoder_path") == str(tmp_path / "checkpoints" / "cpu" / "nmf_decoder.ckpt")
    assert value(argv, "--output_folder") == str(tmp_path / "runs" / "l2i_cpu")


def _datasets(n_train, n_valid):
    return {
        "train": [{"sig": torch.full((4,), float(i))} for i in range(n_train)],
        "valid": [{"sig": torch.full((4,), 100.0 + i)} for i in range(n_valid)],
    }


def test_clips_train_first_then_valid():
    """Mutations: the `break` dropped (more clips than asked); valid first."""
    batch = bench_common.clips(_datasets(2, 3), 3)
    assert batch[:, 0].tolist() == [0.0, 1.0, 100.0]
    assert bench_common.clips(_datasets(5, 3), 1)[:, 0].tolist() == [0.0]


def test_clips_refuses_a_batch_larger_than_the_clips():
    """Fault fixed: a batch above the 70 train + valid clips (`measure.py --batches 128`)
    was silently filled with fewer clips, and measure divided their time by 128: a ms/clip
    figure too small by the missing share."""
    with pytest.raises(ValueError, match="batch 6"):
        bench_common.clips(_datasets(2, 3), 6)


def test_call_times_by_hand(clock):
    """Durations 0.5, 0.4 (warm-up, untimed), then 0.1, 0.3, 0.2 at 2 CPU s per wall s.
    Mutations: warm-up skipped or timed; start read after the call; cpu from perf_counter."""
    durations = iter([0.5, 0.4, 0.1, 0.3, 0.2])
    walls, cpus = bench_common.call_times(
        lambda: clock.spend(next(durations), 2.0), warmup=2, runs=3, with_cpu=True
    )
    assert walls == pytest.approx([0.1, 0.3, 0.2])
    assert cpus == pytest.approx([0.2, 0.6, 0.4])
    durations = iter([0.25, 0.5])
    assert bench_common.call_times(lambda: clock.spend(next(durations)), warmup=0, runs=2) == pytest.approx([0.25, 0.5])


def test_median():
    """Mutations: mean; upper / lower middle."""
    assert bench_common.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert bench_common.median([9.0, 1.0, 2.0]) == 2.0


def test_stage_timed_by_hand(clock):
    """Train stage 3 s (6 CPU s) of which 1 s in on_stage_end, valid 2 s; two epochs kept in
    order. Mutations: clock read after super().on_stage_start / before super().on_stage_end;
    list replaced per epoch; stage names."""
    Stage = types.SimpleNamespace(TRAIN=types.SimpleNamespace(name="TRAIN"), VALID=types.SimpleNamespace(name="VALID"))

    class Base:
        def on_stage_start(self, stage, epoch=None):
            clock.spend(0.5, 2.0)

        def on_stage_end(self, stage, stage_loss, epoch=None):
            clock.spend(1.0, 2.0)

    brain = bench_common.stage_timed(Base)()
    for train_s in (3.0, 4.0):
        brain.on_stage_start(Stage.TRAIN)
        clock.spend(train_s - 1.5, 2.0)
        brain.on_stage_end(Stage.TRAIN, 0.0)
        brain.on_stage_start(Stage.VALID)
        clock.spend(0.5, 1.0)
        brain.on_stage_end(Stage.VALID, 0.0)
    assert [t["wall"] for t in brain.stage_seconds["train"]] == pytest.approx([3.0, 4.0])
    assert [t["cpu"] for t in brain.stage_seconds["train"]] == pytest.approx([6.0, 8.0])
    assert [t["wall"] for t in brain.stage_seconds["valid"]] == pytest.approx([2.0, 2.0])
    assert [t["cpu"] for t in brain.stage_seconds["valid"]] == pytest.approx([3.5, 3.5])


def test_finite_or_none():
    """Mutations: NaN kept; inf kept; tuples / nested dicts not walked."""
    data = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": {"d": np.float64("nan")}, "e": "x"}
    assert bench_common.finite_or_none(data) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None}, "e": "x"}


def test_write_result_is_strict_json_and_atomic(tmp_path):
    """A NaN figure is written as null (strict JSON); a result that cannot be written leaves
    the previous file whole and no partial file. Mutations: finite_or_none skipped (raises);
    a plain non-atomic write."""
    path = tmp_path / "out" / "r.json"
    bench_common.write_result(None, {"x": 1})  # nothing, no error
    bench_common.write_result(path, {"share": float("nan"), "ms": 12.5})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {"share": None, "ms": 12.5}
    with pytest.raises(TypeError):
        bench_common.write_result(path, {"share": 0.5, "bad": object()})
    assert json.loads(path.read_text()) == {"share": None, "ms": 12.5}
    assert sorted(os.listdir(path.parent)) == ["r.json"]


def test_cpu_idle_fraction_by_hand(monkeypatch):
    """/proc/stat: idle + iowait 850 -> 1100 (+250) of 1000 -> 1350 (+350): 250 / 350.
    Mutations: iowait left out; total delta replaced by total; OSError not caught."""
    lines = iter(["cpu  100 0 50 800 50 0 0 0 0 0\n", "cpu  150 0 100 1000 100 0 0 0 0 0\n"])

    class Stat:
        def __init__(self, *args, **kwargs):
            self.line = next(lines)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def readline(self):
            return self.line

    monkeypatch.setattr(bench_common, "open", Stat, raising=False)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    assert bench_common.cpu_idle_fraction() == pytest.approx(250 / 350)

    def unreadable(*args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(bench_common, "open", unreadable, raising=False)
    assert math.isnan(bench_common.cpu_idle_fraction())
    # guest time (a host running VMs) is already in user / nice: not counted twice
    lines = iter(["cpu  100 0 50 800 50 0 0 0 40 0\n", "cpu  150 0 100 1000 100 0 0 0 90 10\n"])
    monkeypatch.setattr(bench_common, "open", Stat, raising=False)
    assert bench_common.cpu_idle_fraction() == pytest.approx(250 / 350)


def test_wait_for_quiet(monkeypatch, clock):
    """Returns at the first share >= idle, or at the deadline. Mutations: `>=` -> `>`;
    the deadline ignored."""
    shares = iter([0.5, 0.9, 0.99])
    monkeypatch.setattr(bench_common, "cpu_idle_fraction", lambda s: next(shares))
    assert bench_common.wait_for_quiet(60, idle=0.9) == 0.9
    now = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(now))
    shares = iter([0.5, 0.6, 0.7])
    assert bench_common.wait_for_quiet(15, idle=0.9) == 0.6  # deadline 15: after the 2nd


# ------------------------------------------------------------------------------ measure


def test_schedule():
    """Mutations: `>` -> `>=`; full size not capped."""
    assert measure._schedule(1, 7, "cpu") == (2, 7)
    assert measure._schedule(4, 7, "cpu") == (2, 7)
    assert measure._schedule(5, 7, "cpu") == (0, 3)
    assert measure._schedule(1, 7, "full") == (0, 3)


class SlowConvTranspose(torch.nn.ConvTranspose2d):
    """A ConvTranspose2d that spends `cost` seconds of the fake clock."""

    def __init__(self, clock, cost):
        super().__init__(1, 1, 1)
        self.clock, self.cost = clock, cost

    def forward(self, x):
        self.clock.spend(self.cost, 1.5)
        return super().forward(x)


class FakeBrain:
    """explain(wavs) spends the next of `explain_s` (psi's two layers, 0.0125 s each, inside
    it) at 1.5 CPU s per wall s; classify spends the next of `classify_s`."""

    def __init__(self, clock, explain_s, classify_s):
        self.clock, self.explain_s, self.classify_s = clock, list(explain_s), list(classify_s)
        psi = torch.nn.Sequential(SlowConvTranspose(clock, 0.0125), SlowConvTranspose(clock, 0.0125))
        self.modules = torch.nn.ModuleDict({"psi": psi})
        self.evaluation_ctx = torch.no_grad()
        self.batches = []

    def explain(self, wavs):
        self.batches.append(len(wavs))
        self.clock.spend(self.explain_s.pop(0) - 0.025, 1.5)
        with torch.no_grad():
            self.modules["psi"](torch.zeros(1, 1, 2, 2))

    def preprocess(self, wavs):
        return wavs, None

    def classify(self, X):
        self.clock.spend(self.classify_s.pop(0))


# call order at --runs 3, batches 1 and 16: batch 1: first, 2 warm-up, 3 timed; batch 16:
# first, 3 timed; the share: 3 calls (0.1 s each, 0.025 of it in psi: 25 %)
EXPLAIN_S = [0.5, 0.2, 0.2, 0.030, 0.010, 0.080] + [2.0, 0.64, 0.32, 1.28] + [0.1, 0.1, 0.1]
# classifier: 2 warm-up, 3 x runs = 9 timed: sorted 2..10 ms, median 6 ms, min 2 ms
CLASSIFY_S = [0.1, 0.1] + [0.006, 0.004, 0.009, 0.005, 0.007, 0.003, 0.008, 0.010, 0.002]


def _patch_workspace(monkeypatch, brain, datasets):
    built = []
    monkeypatch.setattr(bench_common, "prepare_workspace", lambda root: {"root": root})

    def build_brain(method, workspace, size="cpu", brain_class=None, output_folder=None, extra=()):
        built.append({"method": method, "size": size, "brain_class": brain_class, "extra": list(extra)})
        return brain, {"hparams": True}, datasets

    monkeypatch.setattr(bench_common, "build_brain", build_brain)
    monkeypatch.setattr(bench_common, "settings_on", lambda brain: ["fake settings"])
    monkeypatch.setattr(bench_common, "peak_rss_mb", lambda: 1234.0)
    monkeypatch.setattr(bench_common, "load_average", lambda: 1.5)
    return built


def test_measure_explain_figures_by_hand(tmp_path, monkeypatch, clock, capsys):
    """batch 1: timed 30, 10, 80 ms: median 30 ms/clip, min 10, CPU median 45 (1.5 x);
    batch 16: timed 0.64, 0.32, 1.28 s: median 0.64 / 16 = 40 ms/clip, min 20, CPU 60; share
    0.075 / 0.3 = 25 %; classifier median 6 ms, min 2 ms. Mutations: mean for median; min
    of another batch; no division by the batch; ms factor; warm-up schedule (wrong call
    count); the share's `+=` -> `=` or its total per call; classifier runs 3 x runs -> runs."""
    brain = FakeBrain(clock, EXPLAIN_S, CLASSIFY_S)
    _patch_workspace(monkeypatch, brain, _datasets(20, 4))
    out = tmp_path / "explain.json"
    argv = ["explain", "--method", "piq", "--workspace", str(tmp_path), "--runs", "3", "--json", str(out)]
    measure.main(argv)
    result = json.loads(out.read_text())
    assert brain.batches == [1] * 6 + [16] * 4 + [1] * 3 and brain.explain_s == [] and brain.classify_s == []
    one, sixteen = result["explain"]["1"], result["explain"]["16"]
    assert (one["first_s"], one["runs"]) == (pytest.approx(0.5), 3)
    assert one["median_ms_per_clip"] == pytest.approx(30.0)
    assert one["min_ms_per_clip"] == pytest.approx(10.0)
    assert one["median_cpu_ms_per_clip"] == pytest.approx(45.0)
    assert (sixteen["first_s"], sixteen["runs"]) == (pytest.approx(2.0), 3)
    assert sixteen["median_ms_per_clip"] == pytest.approx(40.0)
    assert sixteen["min_ms_per_clip"] == pytest.approx(20.0)
    assert sixteen["median_cpu_ms_per_clip"] == pytest.approx(60.0)
    assert result["conv_transpose_share"] == pytest.approx(0.25)
    assert result["classifier_ms"]["median"] == pytest.approx(6.0)
    assert result["classifier_ms"]["min"] == pytest.approx(2.0)
    assert result["peak_rss_mb"] == 1234.0
    line = capsys.readouterr().out.strip()
    assert "batch 1: 30.0 ms/clip (min 10.0, CPU 45.0), batch 16: 40.0 ms/clip (min 20.0, CPU 60.0)" in line
    assert "classifier alone 6.0 ms; psi ConvTranspose2d 25% of explain at batch 1" in line


def test_measure_explain_no_share_off_cpu(tmp_path, monkeypatch, clock):
    """On a GPU the share is not measured (None, '-'). Mutation: the device test dropped."""
    brain = FakeBrain(clock, [0.5, 0.2, 0.2, 0.03, 0.01, 0.08], [0.1, 0.1] + [0.005] * 9)
    _patch_workspace(monkeypatch, brain, _datasets(20, 4))
    result = measure.measure_explain("l2i", tmp_path, batches=[1], runs=3, device="cuda:0")
    assert result["conv_transpose_share"] is None
    assert "psi ConvTranspose2d - of explain" in measure._summary(result)


def test_measure_train_reports_the_last_epoch(tmp_path, monkeypatch, capsys):
    """Epoch 2 (the one reported): train 7.5 s, valid 2.5 s: 60 / 7.5 = 8.0 clips/s, epoch
    10.0 s. Mutations: [-1] -> [0]; epoch without valid; clips/s of valid clips or of the
    epoch; the Brain class of another method; --number_of_epochs not passed."""
    from recipes.interpreters.piq import PIQ

    brain = types.SimpleNamespace(
        stage_seconds={
            "train": [{"wall": 12.0, "cpu": 20.0}, {"wall": 7.5, "cpu": 13.0}],
            "valid": [{"wall": 4.0, "cpu": 5.0}, {"wall": 2.5, "cpu": 3.5}],
        }
    )
    built = _patch_workspace(monkeypatch, brain, {"train": [0] * 60, "valid": [0] * 10})
    fitted = []
    monkeypatch.setattr(
        "recipes.interpreters.training.fit_interpreter", lambda *args: fitted.append(args)
    )
    out = tmp_path / "train.json"
    measure.main(["train", "--method", "piq", "--workspace", str(tmp_path), "--epochs", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert len(fitted) == 1
    assert issubclass(built[0]["brain_class"], PIQ) and built[0]["brain_class"].__name__ == "StageTimedPIQ"
    assert built[0]["extra"][:2] == ["--number_of_epochs", 2]
    assert (result["n_train"], result["n_valid"]) == (60, 10)
    assert (result["train_s"], result["train_cpu_s"]) == (7.5, 13.0)
    assert (result["valid_s"], result["valid_cpu_s"]) == (2.5, 3.5)
    assert result["epoch_s"] == 10.0
    assert result["train_clips_per_s"] == 8.0
    line = capsys.readouterr().out
    assert "60 train clips in 7.5 s (8.00 clips/s, CPU 13.0 s), 10 valid clips in 2.5 s, epoch 10.0 s" in line


# ------------------------------------------------------------------------------ run_all


def test_fmt():
    """Mutations: thresholds 100 / 10 moved or flipped; the tuple's min dropped."""
    assert run_all._fmt(None) == "-"
    assert run_all._fmt(1234.4) == "1234"
    assert run_all._fmt(100.0) == "100"
    assert run_all._fmt(99.94) == "99.9"
    assert run_all._fmt(10.0) == "10.0"
    assert run_all._fmt(9.876) == "9.88"
    assert run_all._fmt(0.01234) == "0.0123"
    assert run_all._fmt((37.5, 30.3)) == "37.5 (30.3)"
    assert run_all._fmt((None, None)) == "-"


def test_meets():
    """Mutations: `>=` / `<=` made strict or swapped; the tuple's min compared."""
    assert run_all._meets(3.4, (">=", 3.4)) == "yes"
    assert run_all._meets(3.39, (">=", 3.4)) == "no"
    assert run_all._meets(50.0, ("<=", 50.0)) == "yes"
    assert run_all._meets(50.1, ("<=", 50.0)) == "no"
    assert run_all._meets((60.0, 40.0), ("<=", 50.0)) == "no"  # the median counts, not the min
    assert run_all._meets(None, ("<=", 50.0)) == ""
    assert run_all._meets(1.0, None) == ""


def _cells(line, n_columns):
    """A table line cut at its fixed widths: method 6, figure 42, reference 9, goal 8, then per
    column 22 / 3 / 7 (RSS MiB), each after one space."""
    widths = [6, 42, 9, 8] + [22, 3, 7] * n_columns
    cells, at = [], 0
    for width in widths:
        cells.append(line[at : at + width].strip())
        at += width + 1
    assert at - 1 == len(line)
    return cells


def test_print_table_cells_and_order(capsys):
    """Rows by method (first measured first, not by name), then FIGURE_ORDER; reference, goal, value,
    met, RSS per column; an error cell 'failed'. Mutations: reference / goal of another
    row; met of the min; 'failed' lost; order by name; RSS of another column."""
    ours = {  # PIQ measured first: its rows first
        ("PIQ", "train clips/s"): (3.2, 900.0, None),
        ("L2I", "psi ConvTranspose2d share of explain, %"): (12.5, 1000.0, None),
        ("L2I", "explain ms/clip, batch 1"): ((37.5, 30.3), 1234.4, None),
        ("L2I", "train clips/s"): (4.25, 812.3, None),
        ("L2I", "epoch s (train + valid)"): (None, None, "exit status -9: no output"),
    }
    other = {
        ("L2I", "explain ms/clip, batch 1"): ((62.0, 55.0), 1500.0, None),
        ("L2I", "train clips/s"): (2.0, 700.0, None),
    }
    run_all.print_table({"ours": ours, "ours + plain_final": other})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines[0]) == len(lines[1]) and set(lines[1]) == {"-"}
    rows = [_cells(line, 2) for line in lines[2:]]
    assert rows == [
        ["PIQ", "train clips/s", "2.5", ">= 3.7", "3.2", "no", "900", "-", "", "-"],
        ["L2I", "train clips/s", "1.7", ">= 3.4", "4.25", "yes", "812", "2", "no", "700"],
        ["L2I", "epoch s (train + valid)", "43.7", "-", "failed", "", "-", "-", "", "-"],
        ["L2I", "explain ms/clip, batch 1", "130", "<= 50.0", "37.5 (30.3)", "yes", "1234", "62.0 (55.0)", "no", "1500"],
        ["L2I", "psi ConvTranspose2d share of explain, %", "73.0", "-", "12.5", "", "1000", "-", "", "-"],
    ]


def _args(**kw):
    base = {"methods": "l2i,piq", "device": "cpu", "precision": "fp32", "skip_full": False,
            "runs": 3, "timeout": 60, "quiet_wait": 0}  # fmt: skip
    return types.SimpleNamespace(**{**base, **kw})


def test_measure_all_figures(tmp_path, monkeypatch):
    """Each result's numbers land in their rows: share x 100, (median, min) pairs, the
    errors of a failed run on all its rows; every command is one measure.py accepts.
    Mutations: share not x 100; median / min swapped; batch keys; the 'full size: ' prefix;
    a train figure from another key; the error not carried."""
    results = {
        ("train", "l2i"): {"train_clips_per_s": 4.0, "epoch_s": 20.0, "valid_s": 5.0, "peak_rss_mb": 800.0, "settings": ["s1"]},
        ("train", "piq"): {"error": "exit status 1: boom"},
        ("explain", "l2i", "cpu"): {
            "explain": {"1": {"median_ms_per_clip": 30.0, "min_ms_per_clip": 10.0},
                        "16": {"median_ms_per_clip": 20.0, "min_ms_per_clip": 15.0}},
            "classifier_ms": {"median": 6.0, "min": 2.0}, "conv_transpose_share": 0.25, "peak_rss_mb": 900.0,
        },
        ("explain", "piq", "cpu"): {
            "explain": {"1": {"median_ms_per_clip": 31.0, "min_ms_per_clip": 11.0},
                        "16": {"median_ms_per_clip": 21.0, "min_ms_per_clip": 16.0}},
            "classifier_ms": {"median": 7.0, "min": 3.0}, "conv_transpose_share": None, "peak_rss_mb": 950.0,
        },
        ("explain", "l2i", "full"): {
            "explain": {"1": {"median_ms_per_clip": 700.0, "min_ms_per_clip": 650.0}},
            "classifier_ms": {"median": 40.0, "min": 35.0}, "conv_transpose_share": 0.5, "peak_rss_mb": 2000.0,
        },
        ("explain", "piq", "full"): {"error": "timed out after 60 s"},
    }  # fmt: skip
    calls = []

    def fake_run(what, arguments, json_file, timeout, quiet_wait=0):
        args = measure._parse_args([what, *arguments, "--json", str(json_file)])
        calls.append(args)
        key = (what, args.method) if what == "train" else (what, args.method, args.size)
        return results[key]

    monkeypatch.setattr(run_all, "_run", fake_run)
    monkeypatch.setattr(run_all, "SETTINGS", {})
    figures = run_all.measure_all(_args(), tmp_path, tmp_path, "contiguous", "col")
    assert [(a.what, a.method, a.size, a.batches, a.options) for a in calls] == [
        ("train", "l2i", "cpu", [1, 16], "contiguous"),
        ("train", "piq", "cpu", [1, 16], "contiguous"),
        ("explain", "l2i", "cpu", [1, 16], "contiguous"),
        ("explain", "piq", "cpu", [1, 16], "contiguous"),
        ("explain", "l2i", "full", [1], "contiguous"),
        ("explain", "piq", "full", [1], "contiguous"),
    ]
    assert all(a.runs == 3 for a in calls if a.what == "explain")
    assert run_all.SETTINGS == {"col": ["s1"]}
    assert figures[("L2I", "train clips/s")] == (4.0, 800.0, None)
    assert figures[("L2I", "epoch s (train + valid)")] == (20.0, 800.0, None)
    assert figures[("L2I", "valid s (10 clips)")] == (5.0, 800.0, None)
    assert figures[("PIQ", "train clips/s")] == (None, None, "exit status 1: boom")
    assert figures[("L2I", "explain ms/clip, batch 1")] == ((30.0, 10.0), 900.0, None)
    assert figures[("L2I", "explain ms/clip, batch 16")] == ((20.0, 15.0), 900.0, None)
    assert figures[("L2I", "classifier forward ms, batch 1")] == ((6.0, 2.0), 900.0, None)
    assert figures[("L2I", "psi ConvTranspose2d share of explain, %")] == (25.0, 900.0, None)
    assert figures[("PIQ", "psi ConvTranspose2d share of explain, %")] == (None, 950.0, None)
    assert figures[("L2I", "full size: explain ms/clip, batch 1")] == ((700.0, 650.0), 2000.0, None)
    assert figures[("L2I", "full size: psi ConvTranspose2d share of explain, %")] == (50.0, 2000.0, None)
    assert figures[("PIQ", "full size: explain ms/clip, batch 1")] == ((None, None), None, "timed out after 60 s")
    assert ("L2I", "full size: explain ms/clip, batch 16") not in figures
    calls.clear()
    figures = run_all.measure_all(_args(skip_full=True, methods="piq"), tmp_path, tmp_path, "", "ours")
    assert [(a.what, a.size) for a in calls] == [("train", "cpu"), ("explain", "cpu")]


@pytest.fixture
def quiet_run(monkeypatch):
    """run_all._run without the 1 s idle check; its IDLE_BEFORE list fresh."""
    monkeypatch.setattr(bench_common, "cpu_idle_fraction", lambda seconds: 0.75)
    monkeypatch.setattr(bench_common, "wait_for_quiet", lambda seconds: 0.97)
    monkeypatch.setattr(run_all, "IDLE_BEFORE", [])


def test_run_success_reads_the_json(tmp_path, monkeypatch, quiet_run, clock):
    """Mutations: idle of the other check; wall from another clock; the command's order."""
    seen = []

    def fake(command, **kwargs):
        seen.append(command)
        clock.spend(12.5)
        Path(command[-1]).write_text(json.dumps({"train_clips_per_s": 8.0}))
        return subprocess.CompletedProcess(command, 0, "summary\n", "")

    monkeypatch.setattr(subprocess, "run", fake)
    result = run_all._run("train", ["--method", "l2i"], tmp_path / "r.json", 60)
    assert seen == [[sys.executable, str(BENCH / "measure.py"), "train", "--method", "l2i", "--json", str(tmp_path / "r.json")]]
    assert result == {"train_clips_per_s": 8.0, "wall_s": pytest.approx(12.5), "idle_before": 0.75}
    assert run_all._run("train", [], tmp_path / "s.json", 60, quiet_wait=30)["idle_before"] == 0.97
    assert run_all.IDLE_BEFORE == [0.75, 0.97]


def test_run_failure_reports_the_last_lines(tmp_path, monkeypatch, quiet_run):
    """A failed measurement: its last 3 stderr lines. Mutations: a stale / missing JSON read;
    the tail cut elsewhere; the return code not checked."""
    (tmp_path / "r.json").write_text("{}")  # a file is there, but the run failed

    def fake(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "a\nb\nc\nd\nValueError: bad\n")

    monkeypatch.setattr(subprocess, "run", fake)
    result = run_all._run("train", [], tmp_path / "r.json", 60)
    assert result == {"error": "exit status 1: c | d | ValueError: bad"}
    assert run_all.IDLE_BEFORE == []


def test_run_killed_without_output_is_reported_failed(tmp_path, monkeypatch, quiet_run, capsys):
    """Fault fixed: a measurement killed with no output (the kernel's OOM killer: exit
    status -9) gave the error '' (falsy): run_all printed 'done in 0 s' for it and '-'
    cells instead of 'failed'."""

    def fake(command, **kwargs):
        return subprocess.CompletedProcess(command, -9, "", "")

    monkeypatch.setattr(subprocess, "run", fake)
    result = run_all._run("explain", [], tmp_path / "r.json", 60)
    assert result["error"] == "exit status -9: no output"
    run_all._progress("explain L2I full", result)
    assert "done in" not in capsys.readouterr().err
    run_all.print_table({"ours": {("L2I", "train clips/s"): (None, None, result["error"])}})
    assert _cells(capsys.readouterr().out.splitlines()[2], 1)[4] == "failed"


def test_run_timeout(tmp_path, monkeypatch, quiet_run):
    """Mutation: the timeout not passed / not caught."""

    def fake(command, timeout=None, **kwargs):
        raise subprocess.TimeoutExpired(command, timeout)

    monkeypatch.setattr(subprocess, "run", fake)
    assert run_all._run("train", [], tmp_path / "r.json", 7) == {"error": "timed out after 7 s"}
    assert run_all.IDLE_BEFORE == []


def test_main_columns_and_idle_line(tmp_path, monkeypatch, capsys):
    """The idle range leaves out NaN; a second column with --options. Mutations: min / max
    swapped; NaN kept (prints nan); the options column name."""
    monkeypatch.setattr(bench_common, "prepare_workspace", lambda root: None)
    monkeypatch.setattr(bench_common, "cpu_idle_fraction", lambda seconds: 0.8)
    monkeypatch.setattr(run_all, "IDLE_BEFORE", [float("nan"), 0.95, 0.5])
    monkeypatch.setattr(run_all, "SETTINGS", {})
    seen = []

    def measure_all(args, workspace, folder, options, column):
        seen.append((options, column))
        return {("L2I", "train clips/s"): (4.0, 800.0, None)}

    monkeypatch.setattr(run_all, "measure_all", measure_all)
    columns = run_all.main(["--workspace", str(tmp_path), "--options", "plain_final"])
    assert seen == [("", "ours"), ("plain_final", "ours + plain_final")]
    assert list(columns) == ["ours", "ours + plain_final"]
    out = capsys.readouterr().out
    assert "CPUs idle 80% at start, 50-95% just before" in out


# ---------------------------------------------------------------------- long_file_memory


def test_write_long_file_by_hand(tmp_path):
    """9 s in 2 s pieces (the last 1 s): 432000 frames, 2 channels, 16 bits; each channel the
    tone 0.4 sin(2 pi f t) (f 300 Hz for 0-4 s, 500 for 4-8 s, 700 after) plus noise of
    std 0.05, independent per channel. Mutations: a piece off by one sample (gap / shift:
    the tone no longer fits); the tone's step or frequency; one noise for both channels."""
    path = long_file_memory.write_long_file(tmp_path / "long.wav", 9 / 60, piece_s=2)
    info = sf.info(str(path))
    assert (info.frames, info.channels, info.samplerate, info.subtype) == (432000, 2, 48000, "PCM_16")
    x, _ = sf.read(str(path))
    t = np.arange(432000) / 48000
    f = np.where(t < 4, 300.0, np.where(t < 8, 500.0, 700.0))
    residual = x - 0.4 * np.sin(2 * np.pi * f * t)[:, None]
    assert np.abs(residual.std(axis=0) - 0.05).max() < 0.002
    assert abs(np.corrcoef(residual[:, 0], residual[:, 1])[0, 1]) < 0.02
    for edge in (96000, 192000, 384000):  # piece boundaries: the tone carries on
        assert np.abs(residual[edge - 50 : edge + 50]).max() < 0.4


def _probe(stdout, returncode=0, interpretation_s=6.0):
    calls = []

    def fake(command, **kwargs):
        calls.append(command)
        eval_folder = Path(command[command.index("--eval_folder") + 1])
        (eval_folder / "long").mkdir(parents=True)
        sf.write(str(eval_folder / "long" / "long_interpretation.wav"), np.zeros(int(16000 * interpretation_s)), 16000)
        return subprocess.CompletedProcess(command, returncode, stdout, "stderr text")

    return fake, calls


def test_long_file_main_peak_figure(tmp_path, monkeypatch, capsys):
    """VmHWM 1572864 KiB = 1.50 GiB = 1572864 x 1024 B = 1.61 GB (decimal, the target's unit);
    0.2 min = 576000 frames x 4 B = 2.2 MiB; interpretation 6 s = 0.1 min. Mutations: KiB /
    2**30 or / 1e6; the size from another file; the classifier folder not passed."""
    fake, calls = _probe("log\nPEAK_RSS_KB 1572864 STATUS 0\n")
    monkeypatch.setattr(subprocess, "run", fake)
    long_file_memory.main(
        ["--minutes", "0.2", "--run", str(tmp_path / "run"), "--classifier_folder", "cls",
         "--workdir", str(tmp_path / "made" / "here")]  # fmt: skip
    )
    assert (tmp_path / "made" / "here").is_dir()  # --workdir is made (it had to exist before)
    out = capsys.readouterr().out
    assert "0.2 min of 48 kHz stereo (2 MiB on disk)" in out
    assert "batch 16: peak RSS 1.50 GiB = 1.61 GB (target < 1.5 GB)" in out
    assert out.strip().endswith("interpretation 0.1 min")
    command = calls[0]
    assert command[command.index("--classifier_folder") + 1] == "cls"
    assert command[command.index("--pretrained_interpreter") + 1] == str(tmp_path / "run")
    assert "--window" in command and command[command.index("--batch_size") + 1] == "16"


@pytest.mark.parametrize(
    "stdout, returncode",
    [("PEAK_RSS_KB 900000 STATUS 2\n", 0), ("PEAK_RSS_KB 900000 STATUS 0\n", 1), ("no peak line\n", 0)],
)
def test_long_file_main_failure_is_not_a_figure(tmp_path, monkeypatch, capsys, stdout, returncode):
    """An eval that failed (status 2, a non-zero exit, no peak line) stops with the
    message, never a peak figure. Mutations: each of the three checks dropped."""
    fake, _ = _probe(stdout, returncode)
    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(SystemExit, match="the explanation failed"):
        long_file_memory.main(["--minutes", "0.01", "--run", str(tmp_path / "run"), "--workdir", str(tmp_path)])
    captured = capsys.readouterr()
    assert "peak RSS" not in captured.out and "stderr text" in captured.err
