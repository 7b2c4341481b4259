"""recipes/eval.py takes the interpreter's trained settings from its run, refuses what it cannot
do before any work, and explains a long file in bounded batches (issue 24).

The interpreter is the tiny PIQ run of conftest.py (`tiny_piq`: trained with
--signal_length_s 1 --K 30 --emb_dim 8, where hparams/piq.yaml says 5, 1024 and 256).
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import HPARAMS

from recipes import eval as eval_recipe
from recipes.core.run_guard import UnwritableFolderError
from recipes.evaluation import explain_file
from recipes.interpreters.base import InterpreterBrain
from recipes.interpreters.inference import AudioInterpreter

SAMPLE_RATE = 16000
CLIP = "5-100004-A-0.wav"


def bare_argv(tiny_piq, tiny_pretrained, eval_folder, *extra):
    """piq.yaml with none of the training run's size overrides: only the classifier's folder."""
    return [
        str(HPARAMS / "piq.yaml"),
        "--classifier_folder",
        str(tiny_pretrained["classifier"]),
        "--pretrained_interpreter",
        str(tiny_piq["folder"] / "psi_model.ckpt"),
        "--eval_folder",
        str(eval_folder),
        *extra,
    ]


def long_file(tiny_synthetic, path, seconds):
    """The tiny set's clip repeated to `seconds`."""
    clip, rate = sf.read(str(tiny_synthetic / "audio" / CLIP), dtype="float32")
    sf.write(str(path), np.resize(clip, int(seconds * rate)), rate)
    return path


def test_omitted_settings_are_the_runs_not_the_yaml_defaults(tiny_piq, tiny_pretrained, tiny_synthetic, tmp_path):
    """Was: the yaml's signal_length_s 5 (and K 1024, emb_dim 256) used when left out."""
    path = long_file(tiny_synthetic, tmp_path / "three.wav", 3.0)
    result = eval_recipe.main(bare_argv(tiny_piq, tiny_pretrained, tmp_path / "eval", "--single_sample", str(path)))
    assert "signal_length_s = 1 s: only its first 1 s is explained" in result["warnings"][0]
    assert sf.info(result["files"]["interpretation"]).frames == SAMPLE_RATE
    clip = explain_file.peak_normalise(torch.from_numpy(sf.read(str(path), dtype="float32")[0][:SAMPLE_RATE]))
    expected = tiny_piq["brain"].explain(clip.unsqueeze(0))["probs"].max().item()
    assert result["probability"] == pytest.approx(expected, abs=1e-5)


def test_a_setting_that_contradicts_the_run_is_refused_naming_both(tiny_piq, tiny_pretrained, tmp_path):
    argv = bare_argv(tiny_piq, tiny_pretrained, tmp_path / "eval", "--single_sample", str(tmp_path / "x.wav"))
    with pytest.raises(ValueError, match=r"--signal_length_s 5: the interpreter was trained with signal_length_s = 1 \("):
        eval_recipe.main(argv + ["--signal_length_s", "5"])
    with pytest.raises(ValueError, match=r"--mask_th 0.5: the interpreter was trained with mask_th = 0.35"):
        eval_recipe.main(argv + ["--mask_th=0.5"])
    assert not (tmp_path / "eval").exists()
    # the pretrained interface: the same rule for overrides
    folder = tiny_piq["folder"] / "inference"
    with pytest.raises(ValueError, match=r"overrides \{'signal_length_s': 5\}: .* trained with signal_length_s = 1"):
        AudioInterpreter.from_hparams(source=folder, overrides={"signal_length_s": 5})
    assert AudioInterpreter.from_hparams(source=folder, overrides={"signal_length_s": 1.0}).n_samples == SAMPLE_RATE


@pytest.mark.parametrize("flag", ["--eval_folder", "--output_folder"])
def test_an_eval_folder_that_cannot_be_written_is_refused_at_start(
    tiny_piq, tiny_pretrained, tiny_synthetic, tmp_path, capsys, flag
):
    """Was: NotADirectoryError / FileExistsError tracebacks, exit 1."""
    blocker = tmp_path / "taken.txt"
    blocker.write_text("mine")
    clip = str(tiny_synthetic / "audio" / CLIP)
    argv = bare_argv(tiny_piq, tiny_pretrained, blocker / "eval", "--single_sample", clip)
    if flag == "--output_folder":
        at = argv.index("--eval_folder")
        argv[at : at + 2] = ["--output_folder", str(blocker)]
    with pytest.raises(UnwritableFolderError, match=rf"is a file, not a folder\): .*Pass {flag} "):
        eval_recipe.main(argv)
    assert eval_recipe.cli(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"recipes/eval.py: Cannot write to {blocker}")


def test_a_speech_folder_file_that_is_not_audio_names_the_folder_fix(tiny_piq, tiny_synthetic, tmp_path):
    """Was: "the file changed since the manifest was written; rerun prepare_esc50"."""
    speech = tmp_path / "speech"
    speech.mkdir()
    sf.write(str(speech / "LJ001-0001.wav"), 0.1 * np.ones(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    (speech / "notes.wav").write_text("not audio")
    argv = list(tiny_piq["argv"]) + [
        "--pretrained_interpreter", str(tiny_piq["folder"]), "--eval_folder", str(tmp_path / "eval"),
        "--overlap_type", "speech", "--speech_folder", str(speech), "--baselines", "none",
    ]
    with pytest.raises(ValueError) as error:
        eval_recipe.main(argv)
    message = str(error.value)
    assert message.startswith(f"--speech_folder: {speech / 'notes.wav'} is not audio that soundfile can read")
    assert "remove it from the folder, or pass another --speech_folder" in message
    assert "prepare_esc50" not in message and not (tmp_path / "eval").exists()


def test_window_explains_in_batches_of_batch_size_with_a_bounded_png(
    tiny_piq, tiny_pretrained, tiny_synthetic, tmp_path, monkeypatch
):
    """Was: every window of the file in one batch (ten minutes: 5.5 GB), and the whole file's
    spectrograms in memory for the PNG."""
    path = long_file(tiny_synthetic, tmp_path / "long.flac", 2.5)
    batches, plotted = [], []
    explain = InterpreterBrain.explain

    def spy_explain(self, wavs, *args, **kwargs):
        batches.append(wavs.shape[0])
        return explain(self, wavs, *args, **kwargs)

    plot = explain_file.plot_interpretation

    def spy_plot(X, mask, X_int, title=""):
        plotted.append((X.shape, title))
        return plot(X, mask, X_int, title)

    monkeypatch.setattr(InterpreterBrain, "explain", spy_explain)
    monkeypatch.setattr(explain_file, "plot_interpretation", spy_plot)
    one = eval_recipe.main(
        bare_argv(tiny_piq, tiny_pretrained, tmp_path / "one", "--single_sample", str(path), "--window", "--batch_size", "1")
    )
    assert batches == [1, 1, 1]
    batches.clear()
    monkeypatch.setattr(explain_file, "MAX_PLOT_FRAMES", 40)
    together = eval_recipe.main(
        bare_argv(tiny_piq, tiny_pretrained, tmp_path / "all", "--single_sample", str(path), "--window", "--batch_size", "4")
    )
    assert batches == [3]
    assert [w["probability"] for w in one["windows"]] == pytest.approx([w["probability"] for w in together["windows"]], abs=1e-5)
    first, second = (sf.read(run["files"]["interpretation"])[0] for run in (one, together))
    assert first.shape == second.shape == (2.5 * SAMPLE_RATE,) and np.allclose(first, second, atol=1e-4)
    (full_shape, _), (pooled_shape, title) = plotted
    assert pooled_shape[0] == -(-full_shape[0] // 6) <= 40  # 6 frames per column
    assert "6 frames averaged per column" in title


def test_an_eval_folder_of_the_users_files_is_refused_untouched(tiny_piq, tmp_path, capsys):
    """Guards `check_eval_folder`: a folder holding files an evaluation does not write, or
    results of the same names without an evaluation's hyperparams.yaml, is refused before any
    work (was: metrics.md, per_clip.csv and hyperparams.yaml written over, then a refusal at
    the very end over report/index.html)."""
    mine = tmp_path / "mydocs"
    (mine / "report").mkdir(parents=True)
    files = {
        "metrics.md": "my table",
        "per_clip.csv": "a,b",
        "hyperparams.yaml": "lr: 1\n",
        "report/index.html": "<html>my page</html>",
    }
    for name, text in files.items():
        (mine / name).write_text(text)
    argv = list(tiny_piq["argv"]) + [
        "--pretrained_interpreter", str(tiny_piq["folder"]), "--eval_folder", str(mine), "--baselines", "none",
    ]
    assert eval_recipe.cli(argv) == 2
    assert "is not a report of this project: nothing was written" in capsys.readouterr().err
    (mine / "report" / "index.html").unlink()
    with pytest.raises(UnwritableFolderError, match="holds metrics.md, per_clip.csv, report but no hyperparams.yaml of an evaluation"):
        eval_recipe.main(argv)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UnwritableFolderError, match=r"holds files an evaluation does not write \(notes.txt\)"):
        eval_recipe.main(argv)
    files.pop("report/index.html")
    assert {name: (mine / name).read_text() for name in files} == files
    assert sorted(path.name for path in mine.iterdir()) == ["hyperparams.yaml", "metrics.md", "notes.txt", "per_clip.csv", "report"]


def test_an_earlier_evaluation_leaves_no_result_beside_a_new_one(tiny_piq, tiny_lmac, tmp_path):
    """Guards `remove_earlier_results`: PIQ evaluated with the sanity check and 3 report clips,
    then L-MAC into the same folder with 1 clip and no sanity check: the folder holds L-MAC's
    results only (was: PIQ's sanity_check.png and two of its clips left beside them)."""
    folder = tmp_path / "eval"
    common = ["--eval_folder", str(folder), "--baselines", "none", "--n_bootstrap", "10"]
    eval_recipe.main(
        list(tiny_piq["argv"]) + ["--pretrained_interpreter", str(tiny_piq["folder"]), *common]
        + ["--sanity_check", "--sanity_clips", "1", "--n_report_clips", "3"]
    )
    assert (folder / "sanity_check.png").is_file() and len(list((folder / "clips").glob("*.png"))) == 3
    eval_recipe.main(
        list(tiny_lmac["argv"]) + ["--pretrained_interpreter", str(tiny_lmac["folder"]), *common, "--n_report_clips", "1"]
    )
    assert not (folder / "sanity_check.png").exists()
    assert len(list((folder / "clips").glob("*.png"))) == 1
    assert json.loads((folder / "metrics.json").read_text())["interpreter"] == "LMAC"


def test_a_yaml_of_another_method_is_refused_before_any_folder(tiny_piq, tiny_pretrained, tmp_path):
    """Guards `check_interpreter_kind`: L2I's yaml for a PIQ run (was: "NMF dictionary ... not
    found", or a state-dict mismatch, and a half-made eval folder)."""
    argv = bare_argv(tiny_piq, tiny_pretrained, tmp_path / "eval")
    argv[0] = str(HPARAMS / "l2i_conv2d.yaml")
    with pytest.raises(ValueError, match=r"is a PIQ \(its hyperparams.yaml: recipes.interpreters.piq.PIQ\), and .*l2i_conv2d.yaml builds an L2I"):
        eval_recipe.main(argv)
    assert not (tmp_path / "eval").exists()
