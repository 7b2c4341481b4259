"""Known answers for the helpers that turn per-clip values into reported figures (mutation audit).

`recipes.evaluation.scoring`'s pure helpers (which batches a process evaluates, the
per-clip rows, per_clip.csv, the per-class means), `evaluate`'s gathering of them (a Brain
without its set-up, as in test_interpreter_brain_known_answers.py, with a classifier that
tells sound from silence, on five hand-made clips) and `recipes.reporting.tables`
(the summary rows and their intervals, the margin over the best baseline, the cells,
the per-class table, metrics.md, the sanity-check table). Every expected value is
worked out by hand on a few numbers, in the test's docstring.
"""

import contextlib
import math
import types

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.processing.features import ISTFT, STFT

from data_prep.interference import Interference
from recipes.evaluation import metrics, scoring
from recipes.interpreters.base import InterpreterBrain
from recipes.reporting import tables


# ------------------------------------------------------------------ scoring: batches
def test_shard_batch_starts_keep_a_last_batch_of_one_clip():
    """9 clips in batches of 4 are clips 0-3, 4-7 and 8: starts 0, 4, 8 in one process
    (the last batch, one clip, is evaluated too); two processes take them in turn:
    rank 0 gets 0 and 8, rank 1 gets 4."""
    assert scoring.shard_batch_starts(9, 4) == [0, 4, 8]
    assert scoring.shard_batch_starts(9, 4, rank=0, world_size=1) == [0, 4, 8]
    assert scoring.shard_batch_starts(9, 4, rank=0, world_size=2) == [0, 8]
    assert scoring.shard_batch_starts(9, 4, rank=1, world_size=2) == [4]
    assert scoring.shard_batch_starts(1, 4) == [0]


def test_shard_batch_starts_deal_every_clip_to_exactly_one_process():
    """For every small test set, batch size and process count, the batches of all ranks,
    start .. start + batch_size - 1 cut at the set's end, are the clips 0 .. n-1, each once:
    the expected list is range(n), written down without the function."""
    for n_clips in range(1, 13):
        for batch_size in range(1, 6):
            for world_size in range(1, 4):
                clips = [
                    clip
                    for rank in range(world_size)
                    for start in scoring.shard_batch_starts(n_clips, batch_size, rank, world_size)
                    for clip in range(start, min(start + batch_size, n_clips))
                ]
                assert sorted(clips) == list(range(n_clips)), (n_clips, batch_size, world_size)


# ------------------------------------------------------------------ scoring: per-clip rows
def test_clip_rows_give_each_clip_its_own_value_in_a_batch_of_three():
    """Three clips with Fid-In 1, 0, 0.5 and SI-SDRi 3, 2, 1 (one method): row k holds clip
    k's values, id and classes (with two clips, value[i] and value[-i] coincide)."""
    values = {"PIQ": {"fid_in": torch.tensor([1.0, 0.0, 0.5]), "si_sdri": torch.tensor([3.0, 2.0, 1.0])}}
    rows = scoring.clip_rows(values, ["a", "b", "c"], ["dog", "cat", "rain"], ["dog", "dog", "rain"])
    assert rows == [
        {"id": "a", "true_class": "dog", "class": "dog", "method": "PIQ", "fid_in": 1.0, "si_sdri": 3.0},
        {"id": "b", "true_class": "cat", "class": "dog", "method": "PIQ", "fid_in": 0.0, "si_sdri": 2.0},
        {"id": "c", "true_class": "rain", "class": "rain", "method": "PIQ", "fid_in": 0.5, "si_sdri": 1.0},
    ]


def test_per_clip_csv_writes_full_precision_and_leaves_infinite_values_empty():
    """A value is written as Python's repr (0.123456789 stays 0.123456789: a mean over
    per_clip.csv then equals metrics.json's); +inf and -inf, like NaN, are empty cells
    (per_clip_csv's docstring: 'an undefined value (NaN, inf) ... is an empty cell')."""
    rows = [
        {"id": "a", "true_class": "dog", "class": "dog", "method": "PIQ", "si_sdri": 0.123456789},
        {"id": "b", "true_class": "dog", "class": "dog", "method": "PIQ", "si_sdri": math.inf},
        {"id": "c", "true_class": "dog", "class": "dog", "method": "PIQ", "si_sdri": -math.inf},
    ]
    assert scoring.per_clip_csv(rows).splitlines() == [
        "id,true_class,class,method,si_sdri",
        "a,dog,dog,PIQ,0.123456789",
        "b,dog,dog,PIQ,",
        "c,dog,dog,PIQ,",
    ]


# ------------------------------------------------------------------ scoring: per-class means
def _row(clip_id, true_class, method, **values):
    return {"id": clip_id, "true_class": true_class, "class": "x", "method": method, **values}


def test_by_class_counts_clips_not_rows_and_averages_over_defined_values_only():
    """Class dog: clips a, b, c, each with a PIQ row and an all-ones row (6 rows, 3 clips:
    n = 3). PIQ's SI-SDRi 4, NaN, 2: mean (4 + 2) / 2 = 3, the NaN clip out of the
    denominator too; its GT precision +inf, 0.2, 0.4: mean 0.3 (inf is undefined as well).
    Class cat: clip d only, n = 1, SI-SDRi -1."""
    rows = [
        _row("a", "dog", "PIQ", si_sdri=4.0, gt_precision=math.inf),
        _row("a", "dog", "all_ones", si_sdri=0.0),
        _row("b", "dog", "PIQ", si_sdri=math.nan, gt_precision=0.2),
        _row("b", "dog", "all_ones", si_sdri=0.0),
        _row("c", "dog", "PIQ", si_sdri=2.0, gt_precision=0.4),
        _row("c", "dog", "all_ones", si_sdri=0.0),
        _row("d", "cat", "PIQ", si_sdri=-1.0),
        _row("d", "cat", "all_ones", si_sdri=0.0),
    ]
    result = scoring.by_class(rows)
    assert list(result) == ["dog", "cat"]
    assert result["dog"]["n"] == 3 and result["cat"]["n"] == 1
    assert result["dog"]["PIQ"]["si_sdri"] == 3.0
    assert math.isclose(result["dog"]["PIQ"]["gt_precision"], 0.3)
    assert result["dog"]["all_ones"] == {"si_sdri": 0.0}
    assert result["cat"]["PIQ"] == {"si_sdri": -1.0}


# ------------------------------------------------------------------ tables: best baseline
def _evaluation(interpreter, classifier, methods, references=None, intervals=None, **extra):
    """A metrics.json-like evaluation on the classifier `classifier` (its reference group)."""
    return {
        "interpreter": interpreter,
        "overlap_type": "none",
        "wham_noise": False,
        "data_folder": "/data",
        "n_clips": 4,
        "seed": 1,
        "classifier": {"embedding_model": classifier},
        "methods": methods,
        "references": references or {},
        "intervals": intervals or {},
        **extra,
    }


def test_baseline_margins_compare_with_the_baselines_of_the_same_classifier_only():
    """Two classifiers: on c1 the floor mask has SI-SDRi 10, on c2 it has 2. PIQ on c1
    (SI-SDRi 5): best baseline the floor's +10, margin 5 - 10 = -5. LMAC on c2 (SI-SDRi 4,
    its random mask -3): best the floor's +2, margin 4 - 2 = +2; c1's +10 is no competitor."""
    on_c1 = _evaluation("PIQ", "c1", {"PIQ": {"si_sdri": 5.0}, "above_floor": {"si_sdri": 10.0}})
    on_c2 = _evaluation(
        "LMAC", "c2", {"LMAC": {"si_sdri": 4.0}, "random": {"si_sdri": -3.0}, "above_floor": {"si_sdri": 2.0}}
    )
    lines = tables.baseline_margins([on_c1, on_c2]).splitlines()
    floor = "above the clip's floor (no classifier)"
    assert lines[2] == f"| PIQ | +5.00 | {floor} | +10.00 | -5.00 | - | - | - |"
    assert lines[3] == f"| LMAC | +4.00 | {floor} | +2.00 | +2.00 | - | - | - |"


# ------------------------------------------------------------------ tables: summary rows
def test_summary_rows_put_the_classifier_baselines_before_the_references_and_keep_their_intervals():
    """One evaluation: the interpreter, its random mask, then the captum saliency row, then
    'all ones'; each row carries its own interval, the shared rows' looked up by their key
    ('saliency', 'all_ones'), not by their label."""
    saliency_interval = {"fid_in": {"low": 0.2, "high": 0.4}}
    ones_interval = {"fid_in": {"low": 0.9, "high": 1.0}}
    evaluation = _evaluation(
        "PIQ",
        "c1",
        {"PIQ": {"fid_in": 0.8}, "random": {"fid_in": 0.5}, "saliency": {"fid_in": 0.3}},
        references={"all_ones": {"fid_in": 1.0}},
        intervals={"saliency": saliency_interval, "all_ones": ones_interval},
    )
    assert list(tables.summary_rows([evaluation])) == ["PIQ", "PIQ: random mask", "saliency (captum)", "all ones"]
    intervals = tables.summary_intervals([evaluation])
    assert intervals["saliency (captum)"] == saliency_interval
    assert intervals["all ones"] == ones_interval


def test_shared_rows_come_from_the_first_evaluation_of_their_group():
    """Two interpreters on the same classifier and clips: the all-ones row is shown once,
    with the first evaluation's figures (Fid-In 1.0, not the second's 0.7)."""
    first = _evaluation("PIQ", "c1", {"PIQ": {"fid_in": 0.8}}, references={"all_ones": {"fid_in": 1.0}})
    second = _evaluation("LMAC", "c1", {"LMAC": {"fid_in": 0.6}}, references={"all_ones": {"fid_in": 0.7}})
    rows = tables.summary_rows([first, second])
    assert list(rows) == ["PIQ", "LMAC", "all ones"]
    assert rows["all ones"] == {"fid_in": 1.0}


def test_three_seeds_of_one_interpreter_keep_every_row_named_by_their_folders():
    """Was: three seeds of PIQ (Fid-In 0.1, 0.2, 0.3; saliency 0.4, 0.5, 0.6) kept one "PIQ"
    row (the third's) and one "PIQ: saliency (captum)" row for seeds 2 and 3. Every seed is
    its own group (the seed is part of it): the first's saliency row keeps its plain label,
    the others get their evaluation's label in front, the folder relative to /r."""
    evaluations = [
        _evaluation("PIQ", "c1", {"PIQ": {"fid_in": k / 10}, "saliency": {"fid_in": 0.3 + k / 10}},
                    seed=k, folder=f"/r/seed{k}/piq/eval")
        for k in (1, 2, 3)
    ]  # fmt: skip
    rows = tables.summary_rows(evaluations)
    assert {label: stats["fid_in"] for label, stats in rows.items()} == {
        "PIQ (seed1/piq/eval)": 0.1,
        "PIQ (seed2/piq/eval)": 0.2,
        "PIQ (seed3/piq/eval)": 0.3,
        "saliency (captum)": 0.4,
        "PIQ (seed2/piq/eval): saliency (captum)": 0.5,
        "PIQ (seed3/piq/eval): saliency (captum)": 0.6,
    }
    assert list(tables.summary_intervals(evaluations)) == list(rows)


def test_evaluations_with_the_same_label_and_no_folder_are_numbered():
    """Two PIQ evaluations without a folder (dicts, not read from eval folders), on the same
    classifier and clips: "PIQ (#1)" 0.8 and "PIQ (#2)" 0.6, the all-ones row once."""
    first = _evaluation("PIQ", "c1", {"PIQ": {"fid_in": 0.8}}, references={"all_ones": {"fid_in": 1.0}})
    second = _evaluation("PIQ", "c1", {"PIQ": {"fid_in": 0.6}}, references={"all_ones": {"fid_in": 1.0}})
    assert tables.summary_rows([first, second]) == {
        "PIQ (#1)": {"fid_in": 0.8},
        "PIQ (#2)": {"fid_in": 0.6},
        "all ones": {"fid_in": 1.0},
    }


def test_the_oracle_is_a_reference_row_and_left_out_of_the_agreement():
    """L2I's oracle (its best components from the ground truth) is its ceiling, not a
    competitor: kind 'reference' in the summary, and the agreement of the group counts the
    3 methods L2I, random mask, saliency (not 4)."""
    evaluation = _evaluation(
        "L2I",
        "c1",
        {
            "L2I": {"fid_in": 0.9, "AD": 10.0},
            "random": {"fid_in": 0.5, "AD": 40.0},
            "saliency": {"fid_in": 0.7, "AD": 20.0},
            "oracle": {"fid_in": 1.0, "AD": 5.0},
        },
    )
    kinds = {entry.label: entry.kind for entry in tables._summary_entries([evaluation])}
    assert kinds["L2I: best components (oracle)"] == "reference"
    assert kinds["L2I"] == "interpreter" and kinds["L2I: random mask"] == "baseline"
    ((_, agreement),) = tables.agreement_groups([evaluation])
    assert agreement["methods"] == 3


# ------------------------------------------------------------------ tables: warning and cells
def test_classifier_warning_thresholds_and_count():
    """A ground-truth Fid-In of exactly 0.5 is not 'below 0.5': no warning; 0.49 is. A top
    class with 57 of 100 masked predictions (share 0.57, and 0.57 * 100 is 56.99... in
    floating point) is reported as '57 of 100'."""
    assert tables.classifier_warning({"masked_top_class_share": 0.4, "ground_truth_fid_in": 0.5}) is None
    assert "0.49" in tables.classifier_warning({"masked_top_class_share": 0.4, "ground_truth_fid_in": 0.49})
    warning = tables.classifier_warning(
        {"masked_top_class": "rain", "masked_top_class_share": 0.57, "masked_predictions": 100}
    )
    assert "57 % of its predictions on masked inputs (57 of 100)" in warning


def test_format_value_rounds_by_magnitude_and_hides_infinite_values():
    """-41.26 has magnitude >= 10: 1 decimal, '-41.3'; 10.0 is >= 10: '10.0'; 9.9996 rounds
    to 10.000 at 3 decimals, so it is shown as 10.0 is, '10.0' (not '10.000'), while 9.9994
    stays '9.999'; +inf / -inf / NaN are '-' like a missing value."""
    assert tables.format_value(-41.26) == "-41.3"
    assert tables.format_value(10.0) == "10.0"
    assert tables.format_value(9.9996) == "10.0"
    assert tables.format_value(9.9994) == "9.999"
    assert [tables.format_value(v) for v in (math.inf, -math.inf, math.nan)] == ["-", "-", "-"]


def test_a_cell_without_a_value_or_with_half_an_interval_has_no_plus_minus():
    """An interval with a missing or infinite bound has no half-width; a missing value is
    '-' even when its interval is known; (0.9 - 0.5) / 2 = 0.2."""
    assert tables.interval_half_width({"low": None, "high": 0.7}) is None
    assert tables.interval_half_width({"low": -math.inf, "high": 0.7}) is None
    assert tables.format_cell(None, {"low": 0.4, "high": 0.6}) == "-"
    assert tables.format_cell(0.7, {"low": 0.5, "high": 0.9}) == "0.700 ± 0.200"


# ------------------------------------------------------------------ tables: per-class table
def test_by_class_table_sorts_by_si_sdri_and_puts_classes_without_it_last():
    """SI-SDRi dog 4, cat -1, rain none: the worst first, cat (-1), dog (4), then rain
    (no value: last, '-'); each row's clip count is its own class's (3, 2, 1)."""
    result = {
        "interpreter": "PIQ",
        "by_class": {
            "rain": {"n": 1, "PIQ": {}},
            "dog": {"n": 2, "PIQ": {"si_sdri": 4.0}},
            "cat": {"n": 3, "PIQ": {"si_sdri": -1.0}},
        },
    }
    titles, rows = tables.by_class_table(result)
    assert titles == ["true class", "clips", "PIQ SI-SDRi dB"]
    assert rows == [["cat", "3", "-1.000"], ["dog", "2", "4.000"], ["rain", "1", "-"]]


# ------------------------------------------------------------------ tables: metrics.md
def test_metrics_markdown_shows_the_reference_rows_with_their_intervals():
    """metrics.md of an evaluation with 3 methods and an oracle: the header gives the accuracy
    in % (0.75 -> '75.0 %'); the all-ones row is there, labelled 'all ones', with its
    interval (0.9, 1.0): '1.000 ± 0.050'; the agreement ranks the 3 methods, not the oracle."""
    methods = {
        "L2I": {"fid_in": 0.9, "AD": 10.0},
        "random": {"fid_in": 0.5, "AD": 40.0},
        "saliency": {"fid_in": 0.7, "AD": 20.0},
        "oracle": {"fid_in": 1.0, "AD": 5.0},
    }
    result = _evaluation(
        "L2I",
        "c1",
        methods,
        references={"all_ones": {"fid_in": 1.0, "AD": 0.0}},
        intervals={"all_ones": {"fid_in": {"low": 0.9, "high": 1.0}}},
        classifier_accuracy=0.75,
    )
    text = tables.metrics_markdown(result)
    assert text.startswith("# L2I on 4 clips (overlap_type: none, classifier accuracy 75.0 %)")
    assert "| all ones | 1.000 ± 0.050 | 0.000 |" in text.splitlines()
    assert "| Kendall τ (3 methods) |" in text


# ------------------------------------------------------------------ tables: sanity check
def test_sanity_markdown_rows_follow_the_steps():
    """Two steps: row 1 is 'none (trained)' with class kept 1.00 and ρ 1.00 / SSIM 0.90,
    row 2 'classifier' with class kept 0.50 and ρ 0.20 / SSIM 0.30 (each figure its own
    step's; ρ first)."""
    result = {
        "clips": 2,
        "steps": ["none", "classifier"],
        "class_kept": [1.0, 0.5],
        "methods": {"saliency": {"spearman": [1.0, 0.2], "ssim": [0.9, 0.3]}},
        "max_similarity": 0.9,
        "failed": [],
    }
    rows = [line for line in tables.sanity_markdown(result).splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| none (trained) | 1.00 | ρ 1.00 / SSIM 0.90 |",
        "| classifier | 0.50 | ρ 0.20 / SSIM 0.30 |",
    ]
    # the methods named as in the report and the main table (was: the keys, 'saliency')
    assert rows[0] == "| randomised down to | class kept | saliency (captum) |"
    failed = tables.sanity_markdown({**result, "failed": ["saliency"]})
    assert failed.splitlines()[-1] == "**FAILED**: saliency (captum) (its mask did not change)."


# ------------------------------------------------------------------ scoring: evaluate's aggregation
STFT_ARGS = {"sample_rate": 16000, "n_fft": 256, "hop_length": 8.0, "win_length": 16.0}
N_SAMPLES = 2000  # 1/8 s clips: a few frames each


class KeepsSoundClips(InterpreterBrain):
    """An interpreter that keeps everything of a clip with sound and nothing of a silent one
    (whose log1p spectrogram is at most the spectrogram's floor, ~1e-7)."""

    def interpret(self, X, representations, classes, stage):
        sound = (X.flatten(1).amax(dim=1) > 1e-3).float()  # (B,)
        return {"mask": sound.view(-1, 1, 1).expand_as(X).clone()}


class Loudness(torch.nn.Module):
    """The embedding model: X (B, frames, F) -> 10 mean(X), (B, 1) (a weight: the curves'
    `fused_for_inference` copies a module with parameters)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, X):
        return X.flatten(1).mean(dim=1, keepdim=True) * self.scale


def loudness_brain():
    """A Brain without its set-up (as in test_interpreter_brain_known_answers.py) whose
    classifier has logits (10 mean(X), 1, 0): class 0 for a noise clip (mean(X) ~0.6, logit
    ~6 > 1), class 1 for silence or anything masked to zeros (X ~1e-7: logit ~0 < 1)."""
    brain = object.__new__(KeepsSoundClips)
    head = torch.nn.Linear(1, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [0.0], [0.0]]))
        head.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    brain.hparams = types.SimpleNamespace(
        embedding_model=Loudness(),
        classifier=head,
        compute_fbank=None,
        use_melspectra=False,
        classifier_temp=1.0,
        compute_stft=STFT(**STFT_ARGS),
        compute_istft=ISTFT(**STFT_ARGS),
        sample_rate=16000,
        seed=0,
    )
    brain.modules = torch.nn.ModuleDict()
    brain.device = "cpu"
    brain.evaluation_ctx = contextlib.nullcontext()
    brain.label_encoder = None
    return brain


def five_clips(silent=2):
    """Clips c0 .. c4 with labels 0, 1, 0, 1, 0: noise, except clip `silent` (zeros)."""
    data = {f"c{i}": {"label": i % 2, "seed": i} for i in range(5)}
    dataset = DynamicItemDataset(data)

    @sb.utils.data_pipeline.takes("id", "seed")
    @sb.utils.data_pipeline.provides("sig")
    def sig(clip_id, seed):
        noise = 0.1 * torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(seed))
        return torch.zeros(N_SAMPLES) if clip_id == f"c{silent}" else noise

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("class_string_encoded")
    def encoded(label):
        return torch.LongTensor([label])

    dataset.add_dynamic_item(sig)
    dataset.add_dynamic_item(encoded)
    dataset.set_output_keys(["id", "sig", "class_string_encoded"])
    return dataset


def test_evaluate_keeps_every_clip_in_order_and_counts_the_undefined_values(tmp_path):
    """5 clips in batches of 2 (the last batch: one clip), labels 0, 1, 0, 1, 0, clip c2
    silent; the classifier says 0 for c0, c1, c3, c4 (sound) and 1 for c2: accuracy 2 / 5. Rows: one per (clip, method), clips in the
    test set's order, methods in turn (KeepsSoundClips, random, all_ones): 15. Silent clip
    c2 has the all-zeros mask: its SPS and COMP are undefined (1 clip each for the
    interpreter and its random permutation; its masked input is silence, class 1 as on
    the clip itself), left out of the means: the mean COMP is the
    other 4 clips' entropy of a uniform mask over 16 frames x 129 bins (2000 samples, hop 128,
    n_fft 256), log(16 * 129). Every clip keeps its class, so every Fid-In is 1. Masked predictions: the interpreter's, one per clip: 5.
    By class: class '0' has clips c0, c2, c4 (n 3), class '1' c1, c3 (n 2). One report clip
    asked for: c0 alone is written."""
    brain = loudness_brain()
    dataset = five_clips()
    interference = Interference("none", dataset, 0, 16000, N_SAMPLES)
    options = scoring.EvaluationOptions(baselines=("random",), seed=0, n_resamples=20)
    result = scoring.evaluate(
        brain, dataset, {"batch_size": 2}, interference, None, str(tmp_path / "clips"), 1, options
    )
    assert [clip["id"] for clip in result["clips"]] == ["c0"]  # 1 report clip: the first of class 0
    methods = ["KeepsSoundClips", "random", "all_ones"]
    rows = result["per_clip_rows"]
    assert [(row["id"], row["method"]) for row in rows] == [(f"c{i}", m) for i in range(5) for m in methods]
    assert [row["true_class"] for row in rows[::3]] == ["0", "1", "0", "1", "0"]
    assert result["classifier_check"]["accuracy"] == 2 / 5
    assert result["classifier_check"]["masked_predictions"] == 5
    assert result["n_undefined"] == {
        "KeepsSoundClips": {"SPS": 1, "COMP": 1},
        "random": {"SPS": 1, "COMP": 1},
    }
    for method in ("KeepsSoundClips", "random"):
        assert result["methods"][method]["fid_in"] == 1.0
        assert math.isclose(result["methods"][method]["COMP"], math.log(16 * 129), rel_tol=1e-5)
    assert result["references"]["all_ones"]["fid_in"] == 1.0
    assert result["curves"]["per_clip"]["ids"] == [f"c{i}" for i in range(5)]
    classes = scoring.by_class(rows)
    assert {label: entry["n"] for label, entry in classes.items()} == {"0": 3, "1": 2}


class TargetOf:
    """The ground truth's `sources` for `five_clips`: the clip itself is the target of the
    clips `with_target`, the background of the others (their target is silence)."""

    def __init__(self, with_target):
        self.with_target = set(with_target)

    def sources(self, ids, clips, mixture):
        has = torch.tensor([clip_id in self.with_target for clip_id in ids]).view(-1, 1)
        target = torch.where(has, clips, torch.zeros_like(clips))
        return target, mixture.wavs - target


def test_evaluate_with_ground_truth_reports_its_own_fid_in_and_the_references_undefined_values(tmp_path):
    """The clips of the test above, c0 .. c3 their own target, c4's target silent (the clip is
    its background). The ground-truth mask (target |STFT| > background's) keeps everything of
    c0, c1, c3 (class 0 kept) and nothing of c4 (silence: class 1, not 0) and of silent c2
    (class 1, as on c2): its Fid-In (1 + 1 + 1 + 1 + 0) / 5 = 0.8, which the classifier check
    reports (not the all-ones mask's 1). SI-SDR against a silent target is undefined: 2 clips
    (c2, c4) for every mask, the all-ones reference included. The classifier on the targets
    alone: c0, c1, c3 -> 0, silent c2, c4 -> 1, against labels 0, 1, 0, 1, 0: 1 of 5 right.
    Masked predictions: the interpreter's and the ground truth's, 2 x 5."""
    brain = loudness_brain()
    dataset = five_clips()
    interference = Interference("none", dataset, 0, 16000, N_SAMPLES)
    options = scoring.EvaluationOptions(baselines=(), seed=0, n_resamples=20)
    ground_truth = TargetOf(["c0", "c1", "c2", "c3"])
    result = scoring.evaluate(
        brain, dataset, {"batch_size": 2}, interference, ground_truth, str(tmp_path / "clips"), 0, options
    )
    check = result["classifier_check"]
    assert math.isclose(result["references"]["ground_truth"]["fid_in"], 0.8, rel_tol=1e-6)  # a float32 mean
    assert math.isclose(check["ground_truth_fid_in"], 0.8, rel_tol=1e-6)
    assert check["target_accuracy"] == 1 / 5
    assert check["masked_predictions"] == 10
    for method in ("KeepsSoundClips", "all_ones", "ground_truth"):
        assert result["n_undefined"][method]["si_sdr"] == 2, method
    region = metrics.target_region(torch.zeros(1, N_SAMPLES), torch.zeros(1, N_SAMPLES), brain.hparams.compute_stft)
    assert region.sum() == 0  # silence does not dominate silence: c2's mask is empty


def test_evaluations_with_other_deletion_values_do_not_share_their_baselines_or_references():
    """Guards the deletion value in `_reference_group`: the curves' AUCs of a captum baseline and
    of the ground truth depend on what a deleted bin becomes, so an evaluation run with
    `--deletion_value noise_floor` keeps its own rows next to one run with `zero` (each row's AUC
    is the one given below, none replaced by the other run's)."""

    def evaluation(name, deletion_value, saliency_auc, truth_auc):
        return {
            "interpreter": name,
            "data_folder": "/d",
            "classifier": {"embedding_model": "c"},
            "curves": {"deletion_value": deletion_value},
            "methods": {name: {"deletion_auc": 0.25}, "saliency": {"deletion_auc": saliency_auc}},
            "references": {"ground_truth": {"deletion_auc": truth_auc}},
        }

    zero, floor = evaluation("PIQ", "zero", 0.2, 0.1), evaluation("LMAC", "noise_floor", 0.5, 0.3)
    aucs = sorted(row["deletion_auc"] for row in tables.summary_rows([zero, floor]).values())
    assert aucs == [0.1, 0.2, 0.25, 0.25, 0.3, 0.5]
    same = evaluation("LMAC", "zero", 0.5, 0.3)  # the same deletion value: one set of shared rows
    aucs = sorted(row["deletion_auc"] for row in tables.summary_rows([zero, same]).values())
    assert aucs == [0.1, 0.2, 0.25, 0.25]


def test_a_classifier_without_weights_is_folded_as_it_is():
    """Guards `fused_for_inference` on a module without parameters (a fixed feature map): it is
    returned working, not stopped by `next(parameters())`; ReLU of (-1, 2) is (0, 2)."""
    from recipes.core.brains import fused_for_inference

    fused = fused_for_inference(torch.nn.Sequential(torch.nn.ReLU()))
    assert fused(torch.tensor([[-1.0, 2.0]])).tolist() == [[0.0, 2.0]]


def test_a_value_that_rounds_to_zero_has_no_minus_sign():
    """Was: the SPS of "all ones" (a Gini index of -1e-9 in floating point) printed "-0.000".
    -1e-9 and -0.0 print "0.000", also with ± and in the markdown table; -0.0004 rounds to
    zero too; -0.0006 is "-0.001". The per-class table and the margins (signed, "+0.00")
    likewise; the sanity table's ρ of -0.001 is "0.00"."""
    assert [tables.format_value(v) for v in (-1e-9, -0.0, -0.0004, -0.0006)] == ["0.000", "0.000", "0.000", "-0.001"]
    assert tables.format_cell(-1e-9, {"low": -0.1, "high": 0.1}) == "0.000 ± 0.100"
    assert tables.markdown_table({"all ones": {"SPS": -1e-9}}).splitlines()[-1] == "| all ones | 0.000 |"
    result = {"interpreter": "PIQ", "by_class": {"dog": {"n": 1, "PIQ": {"si_sdri": -1e-9}}}}
    assert tables.by_class_table(result)[1] == [["dog", "1", "0.000"]]
    piq = {"interpreter": "PIQ", "methods": {"PIQ": {"si_sdri": -1e-9}, "random": {"si_sdri": -2e-9}}}
    assert tables.baseline_margins([piq]).splitlines()[-1] == "| PIQ | +0.00 | random mask | +0.00 | +0.00 | - | - | - |"
    sanity = {"clips": 1, "steps": ["none"], "class_kept": [1.0], "failed": [], "max_similarity": 0.9,
              "methods": {"PIQ": {"spearman": [-0.001], "ssim": [1.0]}}}  # fmt: skip
    assert "| none (trained) | 1.00 | ρ 0.00 / SSIM 1.00 |" in tables.sanity_markdown(sanity)


def test_classifier_warning_names_the_masks_it_pooled():
    """Was: the warning and the check's line always said "interpreter, saliency and
    ground-truth masks", also for PIQ's and L-MAC's evaluations (no saliency) and without
    ground truth. 6 of 8 (75 %) masked predictions class 'rain': the masks are named from
    "masked_methods"; a metrics.json without it (before they were recorded) names none."""
    check = {"masked_top_class": "rain", "masked_top_class_share": 0.75, "masked_predictions": 8}
    start = "masked-input metrics (Fid-In, AI, AD, AG) are not informative for this classifier: "
    assert tables.classifier_warning({**check, "masked_methods": ["PIQ", "ground_truth"]}) == (
        start + "75 % of its predictions on masked inputs (6 of 8, PIQ and ground-truth masks) are "
        "class 'rain' (more than half)."
    )
    assert tables.classifier_warning({**check, "masked_methods": ["L2I", "saliency", "ground_truth"]}) == (
        start + "75 % of its predictions on masked inputs (6 of 8, L2I, saliency and ground-truth masks) "
        "are class 'rain' (more than half)."
    )
    assert tables.classifier_warning({**check, "masked_methods": ["LMAC"]}) == (
        start + "75 % of its predictions on masked inputs (6 of 8, LMAC mask) are class 'rain' (more than half)."
    )
    assert tables.classifier_warning(check) == (
        start + "75 % of its predictions on masked inputs (6 of 8) are class 'rain' (more than half)."
    )
    assert tables.classifier_check_lines({**check, "masked_methods": ["PIQ"]}) == [
        "most frequent class on masked inputs: 'rain', 75.0 % of 8 predictions (PIQ mask)"
    ]
    assert tables.classifier_check_lines(check) == ["most frequent class on masked inputs: 'rain', 75.0 % of 8 predictions"]


def test_evaluate_records_the_masks_its_classifier_check_pooled(tmp_path):
    """The clips and ground truth of the test above, with the random mask as the only baseline
    (no saliency): the check pools the interpreter's and the ground truth's masked inputs,
    5 + 5 = 10, and says so. Class 0 on the interpreter's (c0, c1, c3, c4; silent c2 is 1)
    and the ground truth's (c0, c1, c3; c2, c4 are 1): 7 of 10, the warning's 70 %."""
    brain = loudness_brain()
    dataset = five_clips()
    interference = Interference("none", dataset, 0, 16000, N_SAMPLES)
    options = scoring.EvaluationOptions(baselines=("random",), seed=0, n_resamples=20)
    ground_truth = TargetOf(["c0", "c1", "c2", "c3"])
    result = scoring.evaluate(
        brain, dataset, {"batch_size": 2}, interference, ground_truth, str(tmp_path / "clips"), 0, options
    )
    check = result["classifier_check"]
    assert check["masked_methods"] == ["KeepsSoundClips", "ground_truth"]
    assert check["masked_predictions"] == 10
    assert "(7 of 10, KeepsSoundClips and ground-truth masks) are class '0'" in check["warning"]
