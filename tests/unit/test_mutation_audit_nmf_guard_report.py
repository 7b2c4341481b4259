"""Mutation audit of recipes/train_nmf.py, recipes/core/run_guard.py and recipes/report.py:
the mutants (R1, R2, ...) the earlier tests (test_train_scripts_audit.py, test_run_guard.py,
test_html_report_audit.py and the like) let through. Each test names those it kills.

Expected values are worked out by hand: frames made of hand-written numbers (a stand-in
spectrogram that cuts a waveform into frames of 4 samples), a stand-in MU that returns 20
hand-written errors (so the log step is 20 // 10 = 2), train logs and checkpoint folders
written here. Not tested: R29 (`unixtime > newest` -> `>=`), equivalent: two checkpoints of
the same unixtime are taken in the filesystem's listing order either way.
"""

import json
import re
import types

import pytest
import test_html_report_audit as html_audit
import test_run_guard
import test_train_scripts_audit
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.checkpoints import Checkpointer

import recipes.train_nmf as train_nmf
from recipes import report
from recipes.core.run_guard import (
    SAVED_HPARAMS,
    refuse_changed_resume,
    trained_epochs,
    trim_train_log,
)

# --- train_nmf -----------------------------------------------------------------------------


def _frames_of_four(wavs, compute_stft):
    """A stand-in spectrogram: (B, T) -> (B, T // 4, 4), the waveform cut into frames of 4."""
    return wavs.reshape(wavs.shape[0], -1, 4).abs(), None


def test_exactly_zero_frames_are_dropped_and_the_others_kept_in_order(monkeypatch):
    """Kills R1 (`X.sum(dim=1) > 0` -> `>= 0`: frames that are exactly zero kept). With frames of
    4 samples, clip a = [1 2 3 4 | 0 0 0 0] and clip b = [0 0 0 0 | 5 6 7 8] have one zero frame
    each (the floor, from 4 zeros, is 0): the matrix is the two other frames, as columns."""
    monkeypatch.setattr(train_nmf, "spectrogram", _frames_of_four)
    clips = {
        "a": {"sig": torch.tensor([1.0, 2, 3, 4, 0, 0, 0, 0])},
        "b": {"sig": torch.tensor([0.0, 0, 0, 0, 5, 6, 7, 8])},
    }
    dataset = DynamicItemDataset(clips, output_keys=["id", "sig"])
    hparams = {"compute_stft": types.SimpleNamespace(n_fft=4), "batch_size": 2, "audio_data_folder": "x"}
    X = train_nmf.collect_frames(dataset, hparams, "cpu")
    assert X.tolist() == [[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]]


N_ERRORS = 20
ERRORS = [round(0.9 - 0.01 * i, 2) for i in range(N_ERRORS)]  # 0.9, 0.89, ..., 0.71


@pytest.fixture(scope="module")
def mu_stand_in_run(tiny_synthetic, tmp_path_factory):
    """train_nmf.main in MU mode, its NMF replaced by one returning W = 1 and ERRORS."""

    def mu(X, K, n_iter, **kwargs):
        return torch.ones(X.shape[0], K), None, list(ERRORS)

    patch = pytest.MonkeyPatch()
    patch.setattr(train_nmf, "nmf_multiplicative_update", mu)
    output = tmp_path_factory.mktemp("nmf_stand_in") / "run"
    argv = test_train_scripts_audit._nmf_argv(
        tiny_synthetic, output, "--K", "2", "--nmf_valid_n_iter", "2", "--n_plot_clips", "1"
    )
    try:
        metrics = train_nmf.main(argv)
    finally:
        patch.undo()
    return output, metrics


def test_mu_log_holds_every_second_iteration_of_twenty(mu_stand_in_run):
    """Kills R14 (log step len // 5 instead of len // 10). 20 errors: step 20 // 10 = 2, so
    iterations 1, 3, ..., 19 with ERRORS[0], ERRORS[2], ..., then the last line, 20."""
    output, _ = mu_stand_in_run
    log = (output / "train_log.txt").read_text()
    lines = re.findall(r"^method: mu, iteration: (\d+) - train rel_err: (\S+)$", log, flags=re.M)
    assert [int(iteration) for iteration, _ in lines] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 20]
    assert [float(value) for _, value in lines] == pytest.approx(
        [0.9, 0.88, 0.86, 0.84, 0.82, 0.8, 0.78, 0.76, 0.74, 0.72, 0.71]
    )


def test_train_time_excludes_the_valid_fit(mu_stand_in_run):
    """Kills R17 (train_time_s = total_time_s): the valid frames are read and fitted after the
    training, so the train time is strictly less than the total; both are in the json."""
    output, metrics = mu_stand_in_run
    saved = json.loads((output / "nmf_metrics.json").read_text())
    assert 0 < saved["train_time_s"] < saved["total_time_s"]
    assert saved["mu_train_errors"] == ERRORS and saved["train_relative_error"] == 0.71


# --- run_guard: trim_train_log -------------------------------------------------------------


def test_epochs_of_two_digits_are_trimmed(tmp_path):
    """Kills R23 (`(\\d+)` -> `(\\d)`: "epoch: 12, ..." no longer read as an epoch line).
    Resumed after epoch 10: the lines of epochs 11 and 12 go, 9 and 10 stay."""
    log = tmp_path / "train_log.txt"
    lines = [f"epoch: {n}, lr: 0.1 - train loss: {n}.0\n" for n in (9, 10, 11, 12)]
    log.write_text("".join(lines))
    assert trim_train_log(log, 10) == [11, 12]
    assert log.read_text() == "".join(lines[:2])


def test_a_missing_log_is_left_alone(tmp_path):
    """Kills R24 (the `not path.is_file()` guard dropped: FileNotFoundError on a resume whose
    log is gone)."""
    log = tmp_path / "train_log.txt"
    assert trim_train_log(log, 3) == []
    assert not log.exists()


def test_only_lines_that_begin_with_the_epoch_are_epoch_lines(tmp_path):
    """Kills R25 (the pattern searched anywhere in the line, or case-blind): a note that
    mentions "epoch: 5," and a line "Epoch: 7, ..." are not FileTrainLogger's epoch lines and
    stay; only "epoch: 2, ..." goes."""
    log = tmp_path / "train_log.txt"
    kept = ["epoch: 1, lr: 1 - loss: 2\n", "note: stopped at epoch: 5, resumed\n", "Epoch: 7, lr: 1\n"]
    log.write_text(kept[0] + "epoch: 2, lr: 1 - loss: 3\n" + "".join(kept[1:]))
    assert trim_train_log(log, 1) == [2]
    assert log.read_text() == "".join(kept)


# --- run_guard: resumes ----------------------------------------------------------------------


def test_checkpoints_with_float_unixtimes_give_the_newest_epochs(tmp_path):
    """Kills R30 (only int unixtimes counted). SpeechBrain writes `unixtime: time.time()`, a
    float: CKPT+a (1700000000.25, epoch 2) and CKPT+b (1700000100.5, epoch 4): 4 epochs done."""
    test_run_guard._checkpoint(tmp_path / "CKPT+a", 1700000000.25, 2)
    test_run_guard._checkpoint(tmp_path / "CKPT+b", 1700000100.5, 4)
    assert trained_epochs(tmp_path) == 4


def test_a_resume_key_given_as_none_is_not_compared(tmp_path):
    """Kills R33 (`hparams[key] is None` no longer skipped): a run whose yaml has no
    nmf_decoder_path (null) resumes a folder whose last start named one, without a refusal."""
    hparams = test_run_guard._resume_hparams(tmp_path, nmf_decoder_path=None)
    (tmp_path / "run" / SAVED_HPARAMS).write_text("nmf_decoder_path: /nmf/nmf_decoder.ckpt\n")
    test_run_guard._checkpoint(tmp_path / "run" / "save" / "CKPT+a", 1, 1)
    assert refuse_changed_resume(hparams) == []



def test_other_settings_over_only_incomplete_checkpoints_are_not_said_to_be_resumed(tmp_path):
    """Kills R36 (the "resumes with other settings" warning given whether or not a complete
    checkpoint is there). alpha 10 at the last start, 1 now; the only checkpoint lacks
    optimizer.ckpt: set aside, the run starts afresh, nothing resumes: no warning. With the
    optimizer's file it is whole: one warning, "alpha 10 -> 1"."""
    hparams = test_run_guard._resume_hparams(tmp_path, alpha=1)
    save = tmp_path / "run" / "save"
    (tmp_path / "run" / SAVED_HPARAMS).write_text("alpha: 10\n")
    hparams["checkpointer"] = Checkpointer(str(save), recoverables={"psi": torch.nn.Linear(1, 1)})
    test_run_guard._checkpoint(save / "CKPT+a", 1, 2, names=("psi", "brain"))
    assert refuse_changed_resume(hparams) == []
    torch.save({"w": torch.zeros(4)}, save / "CKPT+a" / "optimizer.ckpt")
    (warning,) = refuse_changed_resume(hparams)
    assert "other settings than its last start (alpha 10 -> 1)" in warning


# --- report --------------------------------------------------------------------------------


def test_a_report_of_no_evaluation_is_refused(tmp_path, capsys):
    """Kills R42 (`nargs="+"` -> `"*"`: `report.py --out site` with no folder went on to an
    empty report). argparse stops it, exit status 2, naming the missing argument; no folder made."""
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as stopped:
        report.main(["--out", str(out)])
    assert stopped.value.code == 2
    assert "the following arguments are required: eval_folders" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_given_again_through_a_link_is_refused(tmp_path, capsys):
    """Kills R38 (duplicates found by `abspath`, not `realpath`): `evals/piq` and `alias`, a link
    to it, are one folder; the second is refused as the same as the first, exit status 2,
    before any page is written."""
    folder = tmp_path / "evals" / "piq"
    folder.mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(folder)
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as stopped:
        report.main([str(folder), str(alias), "--out", str(out)])
    assert stopped.value.code == 2
    assert f"the evaluation folder {alias} (the same as {folder}) is given twice" in capsys.readouterr().err
    assert not out.exists()


def test_the_page_keeps_the_order_the_folders_were_given_in(tmp_path):
    """Kills R41 (the folders sorted before the page is written) and R45 (another default
    --title: the page's h1 is "Interpretation report" when none is given). PIQ's evaluation in `z_piq`
    is given before the L2I one in `a_l2i`: the page's summary table starts with PIQ's rows
    (PIQ, then its random mask), the L2I row after them, though `a_l2i` sorts first."""
    piq, l2i = tmp_path / "z_piq", tmp_path / "a_l2i"
    html_audit._write_json(html_audit._piq_evaluation(str(piq)), str(piq / "metrics.json"))
    html_audit._write_json(html_audit._l2i_mixtures_evaluation(), str(l2i / "metrics.json"))
    path = report.main([str(piq), str(l2i), "--out", str(tmp_path / "site")])
    parsed = html_audit._parse(path)
    assert parsed.texts("h1") == ["Interpretation report"]
    _, *rows = parsed.table("summary")["rows"]
    labels = [html_audit._texts(row)[0] for row in rows]
    assert labels[:2] == ["PIQ", "PIQ: random mask"]
    assert labels.index("L2I [mixtures]") > 1
