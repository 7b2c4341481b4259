"""Issue 14, "nothing lost, nothing silently wrong": inputs that used to give wrong results.

- a silent clip in the test fold: undefined per-clip ratios are NaN, left out of
  the means and counted ("n_undefined"), never huge;
- `eval.py --single_sample` on empty, silent, long or unreadable files;
- a dataset whose audio is all flac / mp3.

The interpreters are the tiny session fixtures of conftest.py (`tiny_l2i`, `tiny_piq`).
"""

import csv
import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import with_flag

from data_prep.esc50_prepare import dataio_prep, load_clip, prepare_esc50
from recipes import eval as eval_recipe
from recipes.evaluation import metrics

SAMPLE_RATE = 16000  # the tiny runs: 1 s clips at 16 kHz

def _prepared_manifests(data, tmp_path):
    """prepare_esc50's manifests of `data` in tmp_path, and the hparams dataio_prep reads."""
    hparams = {
        "data_folder": str(data),
        "save_folder": str(tmp_path / "save"),
        "sample_rate": SAMPLE_RATE,
        "signal_length_s": 1,
        **{
            f"{split}_annotation": str(tmp_path / f"{split}.json")
            for split in ("train", "valid", "test")
        },
    }
    prepare_esc50(
        data, None, *(hparams[f"{split}_annotation"] for split in ("train", "valid", "test"))
    )
    return hparams



def eval_argv(trained, eval_folder, *extra):
    """The eval command line of a tiny trained interpreter."""
    return (
        list(trained["argv"])
        + ["--pretrained_interpreter", str(trained["folder"] / "psi_model.ckpt")]
        + ["--eval_folder", str(eval_folder), "--n_report_clips", "1", *extra]
    )


def csv_rows(data_folder):
    with open(data_folder / "meta" / "esc50.csv", newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


# ------------------------------------------------------------------ undefined metrics


def test_undefined_metrics_are_nan_and_counted():
    """Each ratio of recipes/evaluation/metrics.py over a zero clip quantity is NaN; a silent estimate is the floor."""
    reference = torch.randn(2, 800, generator=torch.Generator().manual_seed(0))
    silent = torch.zeros(2, 800)
    assert torch.isnan(metrics.si_sdr(reference, silent)).all()  # against a silent target
    assert (
        metrics.si_sdr(silent, reference) == -metrics.SI_SDR_CLIP_DB
    ).all()  # defined: the floor
    X = torch.rand(2, 5, 4) + 0.1
    empty_region = torch.zeros_like(X)
    gt = metrics.ground_truth_metrics(X, X, reference, reference, silent, empty_region)
    for name in ("si_sdr", "si_sdri", "gt_recall"):
        assert torch.isnan(gt[name]).all(), name
    assert (gt["gt_precision"] == 0).all()  # kept energy, none of it in the (empty) region
    region = (X > 0.5).float()
    nothing_kept = metrics.ground_truth_metrics(0 * X, X, silent, reference, reference, region)
    assert (nothing_kept["gt_precision"] == 0).all() and (nothing_kept["gt_recall"] == 0).all()
    assert torch.isnan(metrics.sparseness(torch.zeros(2, 5, 4))).all()
    assert torch.isnan(metrics.complexity(torch.zeros(2, 5, 4))).all()
    certain = torch.tensor([[1.0, 0.0], [0.6, 0.4]])
    gain = metrics.average_gain(
        certain, torch.tensor([[0.5, 0.5], [0.8, 0.2]]), torch.tensor([0, 0])
    )
    assert torch.isnan(gain[0]) and gain[1] == pytest.approx(50.0)  # p_c = 1: nothing to gain

    stats = metrics.StageStats()
    stats.add_values(
        {"si_sdr": metrics.si_sdr(torch.cat([reference, silent]), torch.cat([reference, silent]))}
    )
    assert stats.summary() == {"si_sdr": metrics.SI_SDR_CLIP_DB} and stats.n_undefined == {
        "si_sdr": 2
    }


@pytest.fixture(scope="module")
def silent_clip_data(tiny_synthetic, tmp_path_factory):
    """A copy of the tiny set whose first test-fold clip (and its sources) is all zeros."""
    data = tmp_path_factory.mktemp("silent_clip") / "data"
    shutil.copytree(tiny_synthetic, data)
    clip_id = next(row["filename"] for row in csv_rows(data) if row["fold"] == "5")[: -len(".wav")]
    for path in (data / "audio" / f"{clip_id}.wav", *(data / "sources").glob(f"{clip_id}_*.wav")):
        info = sf.info(str(path))
        sf.write(
            str(path),
            np.zeros(info.frames, dtype=np.float32),
            info.samplerate,
            subtype=info.subtype,
        )
    return data, clip_id


def test_silent_clip_in_the_test_fold_is_counted_not_averaged(tiny_l2i, silent_clip_data, tmp_path):
    """Was: L2I's NMF error mean 39,335 (‖X‖ clamped to 1e-10) instead of ~1."""
    data, clip_id = silent_clip_data
    argv = with_flag(tiny_l2i["argv"], "--data_folder", data)
    result = eval_recipe.main(eval_argv({**tiny_l2i, "argv": argv}, tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    # the mean is over the two clips that have sound, as the brain scores them one by one
    brain = tiny_l2i["brain"]
    others = [
        row["filename"]
        for row in csv_rows(data)
        if row["fold"] == "5" and clip_id not in row["filename"]
    ]
    clips = torch.stack(
        [load_clip(data / "audio" / name, SAMPLE_RATE, SAMPLE_RATE) for name in others]
    )
    expected = brain.score(brain.explain(clips))[0]["nmf_rel_error"].mean().item()
    assert saved["methods"]["L2I"]["nmf_rel_error"] == pytest.approx(expected, rel=1e-4)
    assert saved["methods"]["L2I"]["nmf_rel_error"] < 10
    counts = saved["n_undefined"]
    assert counts == result["n_undefined"]
    # X = 0 and the target is silent: NMF error, SI-SDR(i), precision and recall are undefined
    for method in ("L2I", "random", "saliency", "all_ones", "ground_truth"):
        for metric in ("si_sdr", "si_sdri", "gt_precision", "gt_recall"):
            assert counts[method][metric] == 1, (method, metric)
    assert counts["L2I"]["nmf_rel_error"] == 1
    assert counts["ground_truth"]["SPS"] == counts["ground_truth"]["COMP"] == 1  # an empty region
    for method, stats in saved["methods"].items():
        for metric in ("si_sdr", "si_sdri", "gt_precision", "gt_recall"):
            assert math.isfinite(stats[metric]) and abs(stats[metric]) <= metrics.SI_SDR_CLIP_DB, (
                method,
                metric,
            )
    assert (
        "undefined values, left out of the means (clips): L2I: "
        in (tmp_path / "metrics.md").read_text()
    )
    assert "undefined values" in (tmp_path / "report" / "index.html").read_text()


def test_silent_clip_is_counted_in_the_training_recipes_test_metrics(
    tiny_l2i, silent_clip_data, tmp_path, monkeypatch
):
    """The training recipe's test stage (test_metrics.json) leaves the silent clip out and counts it."""
    data, _ = silent_clip_data
    hparams = _prepared_manifests(data, tmp_path)
    test_set = dataio_prep(hparams)[0]["test"]
    brain = tiny_l2i["brain"]
    monkeypatch.setattr(
        brain.hparams, "output_folder", str(tmp_path)
    )  # the test stage's files go here
    brain.evaluate(test_set, max_key=brain.best_key, test_loader_kwargs={"batch_size": 4})
    stats = json.loads((tmp_path / "test_metrics.json").read_text())
    assert stats["n_undefined"]["nmf_rel_error"] == 1
    assert 0 < stats["nmf_rel_error"] < 10


# ------------------------------------------------------------------ --single_sample


def write_audio(path, signal, sample_rate=SAMPLE_RATE):
    sf.write(str(path), np.asarray(signal, dtype=np.float32), sample_rate)
    return path


def clip_of(tiny_synthetic, fold):
    """(path, 1 s signal) of the first clip of a fold."""
    name = next(row["filename"] for row in csv_rows(tiny_synthetic) if row["fold"] == str(fold))
    path = tiny_synthetic / "audio" / name
    return path, sf.read(str(path), dtype="float32")[0]


@pytest.mark.parametrize("content", ["no samples", "zero bytes", "random bytes"])
def test_single_sample_refuses_what_is_not_audio(tiny_piq, tmp_path, content):
    """Was: exit 0 and a confident class for 0 frames; a 'rerun prepare_esc50' error for bytes."""
    path = tmp_path / "input.wav"
    if content == "no samples":
        write_audio(path, np.zeros(0))
    else:
        path.write_bytes(b"" if content == "zero bytes" else np.random.default_rng(0).bytes(3000))
    with pytest.raises(ValueError) as error:
        eval_recipe.main(eval_argv(tiny_piq, tmp_path / "eval", "--single_sample", str(path)))
    message = str(error.value)
    assert str(path) in message and "manifest" not in message and "prepare_esc50" not in message
    if content == "no samples":
        assert "holds no audio (0 samples)" in message
    else:
        assert "is not audio that soundfile can read" in message
    assert not (tmp_path / "eval").exists()  # refused before any set-up
    if content != "no samples":  # the dataset path keeps its own message
        with pytest.raises(RuntimeError, match="rerun prepare_esc50"):
            load_clip(path, SAMPLE_RATE, SAMPLE_RATE)


def test_single_sample_warns_on_silence(tiny_piq, tmp_path, capsys):
    """Was: exit 0 and a confident class, with no warning."""
    path = write_audio(tmp_path / "silence.wav", np.zeros(SAMPLE_RATE))
    result = eval_recipe.main(eval_argv(tiny_piq, tmp_path, "--single_sample", str(path)))
    assert len(result["warnings"]) == 1 and "silence.wav is silent" in result["warnings"][0]
    printed = capsys.readouterr()
    assert f"explain_file - {result['warnings'][0]}" in printed.out + printed.err  # logged
    saved = json.loads((tmp_path / "silence" / "prediction.json").read_text())
    assert saved["warnings"] == result["warnings"]


def test_long_file_is_explained_on_its_start_with_a_warning(tiny_piq, tiny_synthetic, tmp_path):
    """Was: only the first signal_length_s explained, and nothing said so."""
    _, first = clip_of(tiny_synthetic, 1)
    _, second = clip_of(tiny_synthetic, 2)
    path = write_audio(tmp_path / "long.wav", np.concatenate([first, second, second]))
    result = eval_recipe.main(eval_argv(tiny_piq, tmp_path, "--single_sample", str(path)))
    assert result["warnings"] == [
        f"{path} is 3 s long but the classifier takes signal_length_s = 1 s: only its first 1 s "
        "is explained. Pass --window to explain the whole file in consecutive windows of 1 s."
    ]
    assert sf.info(result["files"]["interpretation"]).frames == SAMPLE_RATE
    assert "windows" not in result


def test_window_explains_the_whole_file(tiny_piq, tiny_synthetic, tmp_path, capsys):
    """--window: every window of signal_length_s in one batch, one wav and one PNG of the file."""
    paths_signals = [clip_of(tiny_synthetic, fold) for fold in (1, 2)]
    (first_path, first), (second_path, second) = paths_signals
    half = SAMPLE_RATE // 2
    # a clip, 1 s of silence, half of another clip at a quarter of its level: 2.5 s, the last
    # window zero-padded (each window is peak-normalised on its own, as a dataset clip)
    path = write_audio(
        tmp_path / "long.flac", np.concatenate([first, np.zeros(SAMPLE_RATE), 0.25 * second[:half]])
    )
    result = eval_recipe.main(
        eval_argv(tiny_piq, tmp_path, "--single_sample", str(path), "--window")
    )
    windows = result["windows"]
    assert [(w["start_s"], w["end_s"], w["silent"]) for w in windows] == [
        (0.0, 1.0, False),
        (1.0, 2.0, True),
        (2.0, 2.5, False),
    ]
    assert len(result["warnings"]) == 1 and "window(s) [1]" in result["warnings"][0]
    # each window is explained as the dataset explains a clip
    brain = tiny_piq["brain"]
    alone = [
        load_clip(first_path, SAMPLE_RATE, SAMPLE_RATE),
        torch.zeros(SAMPLE_RATE),
        load_clip(write_audio(tmp_path / "tail.wav", second[:half]), SAMPLE_RATE, SAMPLE_RATE),
    ]
    probs = brain.explain(torch.stack(alone))["probs"]  # (3, N)
    for window, window_probs in zip(windows, probs):
        assert window["probability"] == pytest.approx(window_probs.max().item(), abs=1e-5)
        assert window["class"] == brain.class_name(int(window_probs.argmax()))
    file_probs = (probs[0] + probs[2]) / 2  # the silent window is left out
    assert result["class"] == brain.class_name(int(file_probs.argmax()))
    assert result["probability"] == pytest.approx(file_probs.max().item(), abs=1e-5)
    # one interpretation of the whole file, cropped to its length, and one PNG
    original, _ = sf.read(result["files"]["original"])  # each window at its own peak, 1
    assert [np.abs(original[i * SAMPLE_RATE : (i + 1) * SAMPLE_RATE]).max() for i in (0, 2)] == pytest.approx(
        [1.0, 1.0], abs=1e-3
    )
    interpretation, rate = sf.read(result["files"]["interpretation"])
    assert rate == SAMPLE_RATE and interpretation.shape == (2 * SAMPLE_RATE + half,)
    assert (
        np.abs(interpretation[SAMPLE_RATE : 2 * SAMPLE_RATE]).max() < 1e-3
    )  # silence stays silent
    assert (
        result["files"]["png"].endswith("long.png") and (tmp_path / "long" / "long.png").is_file()
    )
    saved = json.loads((tmp_path / "long" / "prediction.json").read_text())
    assert saved["windows"] == windows and saved["window_s"] == 1.0
    assert "mean of 3 windows" in capsys.readouterr().out


def test_window_needs_a_single_sample(tiny_piq, tmp_path):
    with pytest.raises(ValueError, match="--window explains one long file"):
        eval_recipe.main(eval_argv(tiny_piq, tmp_path, "--window"))


# ------------------------------------------------------------------ audio formats


@pytest.mark.parametrize("extension", ["flac", "mp3"])
def test_dataset_of_flac_or_mp3_is_prepared(tiny_synthetic, tmp_path, extension):
    """Was: refused with 'has no .wav file', although mixed rows loaded fine."""
    if extension.upper() not in sf.available_formats():
        pytest.skip(f"this soundfile build cannot write {extension}")
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    shutil.copytree(tiny_synthetic / "meta", data / "meta")
    rows = csv_rows(tiny_synthetic)
    for row in rows:
        signal, rate = sf.read(str(tiny_synthetic / "audio" / row["filename"]), dtype="float32")
        row["filename"] = row["filename"][: -len(".wav")] + f".{extension}"
        write_audio(data / "audio" / row["filename"], signal, rate)
    with open(data / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    hparams = _prepared_manifests(data, tmp_path)
    datasets, label_encoder = dataio_prep(hparams)
    assert [len(datasets[split]) for split in ("train", "valid", "test")] == [9, 3, 3]
    assert len(label_encoder) == 3
    item = datasets["test"][0]
    wav = load_clip(tiny_synthetic / "audio" / f"{item['id']}.wav", SAMPLE_RATE, SAMPLE_RATE)
    assert item["sig"].shape == (SAMPLE_RATE,)
    if extension == "flac":  # lossless
        assert torch.allclose(item["sig"], wav, atol=1e-3)
    else:  # lossy, with the encoder's delay: the same sound, not the same samples
        assert item["sig"].abs().max() == pytest.approx(1.0) and item["sig"].std() > 0.5 * wav.std()
