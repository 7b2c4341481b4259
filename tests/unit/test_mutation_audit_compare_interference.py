"""Mutation audit of recipes/compare.py (everything but the aggregation maths, audited before)
and data_prep/interference.py: tests for the small wrong edits the other tests let through.

KILLED

The audit's 60 mutants (C1 .. C38 in compare.py, C39 .. C60 in interference.py): 36 were
caught by the existing tests, some only by the integration tests' trained runs (C16, C18,
C25, C26, C36 by tests/integration/test_compare.py; C45, speech files not searched in
subfolders, by tests/integration/test_eval.py's speech overlap, checked here on the fast path
too). Of the 24 others, each test here names the ones it kills:

- compare.py: C4 (--seeds sorted), C10 (a --set value over two lines refused), C15 (a --set
  value of the wrong type not refused), C21 (the NMF dictionary planned for PIQ rather than
  L2I), C28 (a demo evaluation paired without its training stage), C29 (no "the demo
  settings" for a variant without --set), C31 (--set defaulting to None), C32 (an empty
  --variant told to use --variant), C33 (--variant matched as a prefix only), C34
  (--data_folder ignored), C35 (a missing --config a traceback);
- interference.py: C39 (an unknown overlap type accepted), C40 / C41 / C42 (the EPS of the
  clip, interference or peak normalisation dropped: NaN for a silent signal), C46 (speech
  files unsorted), C47 / C60 (the message of a missing or empty --speech_folder), C50 (white
  noise of seed s + 1 = seed s's shifted by one clip), C53 (the gain of the clips as they are (B, T), not (B, 1)), C54 (the interference
  not cast to the clips' dtype / device).

EQUIVALENT (no test can tell them apart)

- C11: `re.fullmatch` -> `re.match` for --set: the pattern ends in `(.*)` under re.S, which
  always reaches the end of the text, so every match is a full match.
- C44: `(different.sum(dim=1) == 0).any()` -> `.all()`: a row without another class means
  every label equals that row's, so then every row has none (and the empty case is caught
  before).
- C48: the WHAM! mixer kept for every overlap type: `mix` reads it only when the type is
  "none".

Expected values are worked out by hand (zero signals, file names, plan labels, the messages
the docstrings give) or with numpy in float64, never read from the code under test. Nothing
is trained: the stages of a compare run are made beforehand (placeholder outputs, the
helpers of test_compare_audit / test_mutation_audit_commands), or `run_compare` is replaced
by a recorder of what `main` passes it.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_compare_audit import COMMON, LMAC_ONLY, SMOKE, _evaluation, _reused_plan
from test_mutation_audit_commands import _made_beforehand

from data_prep.interference import Interference, overlap_mix, speech_files
from data_prep.wham_prepare import WhamMixer
from recipes import compare

# ---------------------------------------------------------------- compare: arguments


def _argv(tmp_path, *extra):
    return ["--smoke", "--output_folder", str(tmp_path / "out"), "--interpreters", "lmac", *extra]


def _main_recorded(monkeypatch, argv):
    """compare.main with `run_compare` replaced by a recorder: what main passes it."""
    calls = []

    def recorder(config, output_folder, seeds, interpreters, **kwargs):
        calls.append(dict(kwargs, config=config, output_folder=output_folder, seeds=seeds))
        return {"timings": {}, "cpu_times": {}, "table": "", "per_seed_csv": "p.csv",
                "summary_md": "s.md", "summary_json": "s.json", "total_s": 0.0}

    monkeypatch.setattr(compare, "run_compare", recorder)
    compare.main(argv)
    (call,) = calls
    return call


def test_seeds_are_kept_in_the_order_given():
    """C4: `--seeds 1236 1234` trains and reports 1236 first, as given (not sorted)."""
    assert compare.resolve_seeds(1234, seeds=[1236, 1234]) == [1236, 1234]


def test_a_set_value_over_two_lines_and_a_value_of_the_wrong_type():
    """C10: a value written over two lines ("=\\n3") is the yaml value 3, not a malformed
    setting; C15: `number_of_epochs=two` (a number in lmac_conv2d.yaml) is refused by
    apply_settings, naming the setting, before any stage runs."""
    config = compare.apply_settings(LMAC_ONLY, ["lmac.average_checkpoints=\n3"])
    assert config["stages"]["lmac"]["overrides"] == {"lr": 0.5, "average_checkpoints": 3}
    with pytest.raises(ValueError, match=r"^--set lmac.number_of_epochs: --number_of_epochs 'two': "):
        compare.apply_settings(LMAC_ONLY, ["lmac.number_of_epochs=two"])


@pytest.mark.parametrize(
    "variant, message",
    [("v/../..", "--variant 'v/../..': a folder name"), ("", "--variant '': a folder name")],
)
def test_a_variant_that_is_not_one_folder_name_is_refused(variant, message, capsys, tmp_path):
    """C33: "v/../.." (a valid first letter, then a path leaving variants/) accepted by a
    prefix match; C32: an empty name told "--set needs --variant NAME". The misspelt key
    stops a mutant before any stage runs."""
    with pytest.raises(SystemExit) as stop:
        compare.main(_argv(tmp_path, "--variant", variant, "--set", "lmac.no_such_key=1"))
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_is_a_usage_error(capsys, tmp_path):
    """C35: load_config's FileNotFoundError left as a traceback, not turned into `parser.error`."""
    with pytest.raises(SystemExit) as stop:
        compare.main(_argv(tmp_path, "--config", str(tmp_path / "nowhere.yaml")))
    assert stop.value.code == 2
    assert f"Demo config {tmp_path / 'nowhere.yaml'} does not exist" in capsys.readouterr().err


def test_data_folder_replaces_the_data_stage(monkeypatch, tmp_path, tiny_synthetic):
    """C34: --data_folder dropped: the config main runs is the one with the user's dataset, so
    its plan has no data stage (the classifier is the first)."""
    call = _main_recorded(monkeypatch, _argv(tmp_path, "--seeds", "5", "--data_folder", str(tiny_synthetic)))
    assert call["config"]["data_folder"] == os.path.abspath(tiny_synthetic)
    plan, _ = compare.plan_stages(call["config"], str(tmp_path / "out"), [5], ["lmac"])
    assert [label for label, _ in plan] == ["classifier", "lmac [seed 5]", "eval_lmac [seed 5]"]


# ---------------------------------------------------------------- compare: plan and pairing


def test_the_nmf_dictionary_is_planned_for_l2i_only(tmp_path):
    """C21: the NMF stage is L2I's dictionary: planned with L2I, not with PIQ alone."""
    plans = {
        name: [label for label, _ in compare.plan_stages(SMOKE, str(tmp_path), [5], [name])[0]]
        for name in ("l2i", "piq")
    }
    assert plans == {
        "l2i": ["data", "classifier", "nmf", "l2i [seed 5]", "eval_l2i [seed 5]"],
        "piq": ["data", "classifier", "piq [seed 5]", "eval_piq [seed 5]"],
    }


def test_a_variant_without_settings_is_named_the_demo_settings(tmp_path):
    """C31 (--set defaulting to None: a TypeError in apply_settings), C29 (the summary's
    "Variant `again`: ." for no setting): `--variant again` alone runs the demo's settings in
    the variant's own folders."""
    out = tmp_path / "out"
    config = compare.apply_settings(SMOKE, [])
    _reused_plan(config, out, [COMMON], ["lmac"], {(COMMON, "lmac"): _evaluation("LMAC", 0, COMMON)}, "again")
    compare.main(_argv(tmp_path, "--seeds", str(COMMON), "--variant", "again"))
    text = (out / "variants" / "again" / "compare" / "summary.md").read_text(encoding="utf-8")
    assert "Variant `again`: the demo settings.\n" in text


def test_no_pairing_where_the_demo_interpreter_was_not_trained_with_its_settings(tmp_path, monkeypatch):
    """C28: the demo's evaluation is made with its settings but its training stage is not (its
    model retrained otherwise): not paired, the seed named as having no such evaluation."""
    config = compare.apply_settings(SMOKE, ["lmac.average_checkpoints=3"])
    evaluation = {"interpreter": "LMAC", "methods": {"LMAC": {"si_sdri": 2.0, "gt_precision": 0.5, "fid_in": 0.5}}}
    _made_beforehand(SMOKE, tmp_path, [COMMON], evaluation)
    _made_beforehand(config, tmp_path, [COMMON], evaluation, variant="avg3")
    monkeypatch.setattr(compare, "_made_as_planned", lambda stage: stage.name != "lmac")
    result = compare.run_compare(config, str(tmp_path), [COMMON], ["lmac"], variant="avg3", baseline_config=SMOKE)
    assert result["paired"] == ""
    text = (tmp_path / "variants" / "avg3" / "compare" / "summary.md").read_text(encoding="utf-8")
    assert f"Seeds {COMMON} have no evaluation with the demo's settings" in text


# ---------------------------------------------------------------- interference


def test_an_unknown_overlap_type_is_refused():
    """C39: "speach" accepted (and then mixed as speech would be, or crash later)."""
    with pytest.raises(ValueError, match=r"overlap_type 'speach': choose one of \('none', 'mixtures'"):
        Interference("speach", None, 0, 16000, 4)


def test_silent_clips_and_interferences_stay_finite():
    """C40 / C41 / C42 (the EPS of the clip's norm, the interference's norm or the peak
    dropped: 0 / 0): by hand, a silent clip with n = (0, 2, 0, 0) is the interference alone,
    0.2 n / 2 peak-normalised: (0, 1, 0, 0); x = (3, 0, 0, 0) with silent n is x / 3 peak-
    normalised: (1, 0, 0, 0); both silent: zeros stay zeros."""
    zeros = torch.zeros(1, 4)
    silent_clip = overlap_mix(zeros, torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
    assert silent_clip.tolist()[0] == pytest.approx([0.0, 1.0, 0.0, 0.0], abs=1e-6)
    silent_noise = overlap_mix(torch.tensor([[3.0, 0.0, 0.0, 0.0]]), zeros)
    assert silent_noise.tolist()[0] == pytest.approx([1.0, 0.0, 0.0, 0.0], abs=1e-6)
    assert overlap_mix(zeros, zeros).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_speech_files_are_searched_in_subfolders_and_sorted(tmp_path, monkeypatch):
    """C46: the files in the order the folder lists them (which differs between file systems):
    a seed's speech choices would differ too. The subfolder's file is found (C45, also caught by
    tests/integration/test_eval.py); sorted by hand: speakers/one.wav < top.wav."""
    (tmp_path / "speakers").mkdir()
    for path in (tmp_path / "top.wav", tmp_path / "speakers" / "one.wav", tmp_path / "notes.txt"):
        path.write_bytes(b"")
    expected = [tmp_path / "speakers" / "one.wav", tmp_path / "top.wav"]
    assert speech_files(str(tmp_path)) == expected
    listed = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: reversed(sorted(listed(self, pattern))))
    assert speech_files(str(tmp_path)) == expected


def test_speech_folder_missing_or_unset_says_which(tmp_path):
    """C47: a folder that does not exist told it "holds no .wav file"; C60: an empty
    --speech_folder ("") told it "does not exist" rather than that speech needs one."""
    with pytest.raises(FileNotFoundError, match=r"^--speech_folder \S*nowhere does not exist: "):
        speech_files(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"^--overlap_type speech needs --speech_folder, "):
        speech_files("")


def test_white_noise_of_two_seeds_shares_no_clip():
    """C50: the noise generator seeded with seed + position, so seed 6's clip 0 is seed 5's
    clip 1 (the seeds' evaluations share their noise, one clip apart)."""
    five = Interference("white_noise", None, 5, 16000, 64).interference(0, 4)
    six = Interference("white_noise", None, 6, 16000, 64).interference(0, 4)
    assert not any(torch.equal(a, b) for a in five for b in six)


def test_the_clips_as_they_are_have_one_gain_per_clip():
    """C53: the gain of the clips as they are (with or without WHAM! noise) made ones of the
    clips' shape (B, T), not one 1 per clip (B, 1) as `Mixture` documents (and the mixtures give)."""
    noise = torch.randn(2, 500, generator=torch.Generator().manual_seed(0))
    clips = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    plain = Interference("none", None, 3, 16000, 64)
    noisy = Interference("none", None, 3, 16000, 64, wham_mixer=WhamMixer(noise, snr_db=0.0))
    for interference in (plain, noisy):
        assert torch.equal(interference.mix(clips, 0).gain, torch.ones(2, 1))


def test_the_mixture_is_computed_at_the_clips_precision():
    """C54 (`.to(wavs)` dropped: the interference normalised in float32 beside float64 clips;
    on a GPU, a device mismatch): the 0.8 / 0.2 unit-norm mix, peak-normalised, worked out
    with numpy in float64 from the white noise drawn, to 1e-12."""
    clips = torch.randn(2, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    interference = Interference("white_noise", None, 1, 16000, 64)
    noise = interference.interference(0, 2).numpy().astype(np.float64)
    x = clips.numpy()
    mixed = 0.8 * x / np.linalg.norm(x, axis=1, keepdims=True) + 0.2 * noise / np.linalg.norm(
        noise, axis=1, keepdims=True
    )
    expected = mixed / np.abs(mixed).max(axis=1, keepdims=True)
    got = interference.mix(clips, 0).wavs
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)

