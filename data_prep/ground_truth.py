"""The separate sources of the synthetic dataset, read aligned with its clips.

`data_prep/synthetic_prepare.py` saves, for each clip, the target event and
the background (`sources/<id>_target.wav`, `sources/<id>_background.wav`,
listed in `meta/ground_truth.csv`), whose sum is the clip. `GroundTruth` reads
them as the clip was read (mono, resampled, padded / cropped) and scaled by the
clip's peak-normalisation gain, and checks that they still sum to the clip.
Out of distribution (`data_prep.interference`: another clip, white noise or
speech mixed in, or WHAM! noise) the target stays the target, scaled as the
clip was, and the interference joins the background, so the sources still sum
to the evaluated clip. The metrics computed against them are in
`recipes/evaluation/metrics.py`.

Authors
 * audio-interpret contributors 2026
"""

import csv
import os
from pathlib import Path

import torch

from data_prep.audio import EPS, pad_or_crop, read_audio
from data_prep.synthetic_prepare import GROUND_TRUTH_CSV, read_source_paths

SOURCE_CHECK_ATOL = 1e-3  # target + background must give the clip within this (16-bit files)


class GroundTruth:
    """The separate sources of a synthetic dataset, aligned with its clips.

    Arguments
    ---------
    data_folder : str
        The dataset root, holding `meta/ground_truth.csv` and `sources/`.
    sample_rate, n_samples : int
        The clips' rate and length (the recipe's).
    """

    def __init__(self, data_folder, sample_rate, n_samples):
        self.data_folder = Path(data_folder)
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.paths = read_source_paths(self.data_folder)

    @staticmethod
    def available(data_folder):
        """True when `data_folder` has the synthetic dataset's ground truth."""
        return data_folder is not None and os.path.isfile(
            os.path.join(data_folder, GROUND_TRUTH_CSV)
        )

    def background_recordings(self):
        """{clip id: the background recording its background was cropped from}, as
        `meta/ground_truth.csv`'s `background_recording` column gives it (a set made by
        `data_prep/collection_prepare.py`); {} for a set without that column (the synthetic
        set, whose backgrounds are generated per clip).

        Example
        -------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     os.makedirs(os.path.join(tmp, "meta"))
        ...     with open(os.path.join(tmp, GROUND_TRUTH_CSV), "w") as fout:
        ...         _ = fout.write("id,target_path,background_path,background_recording\\n"
        ...                        "1-1-A-0,t.wav,b.wav,rain.ogg\\n1-2-A-0,t2.wav,b2.wav,\\n")
        ...     GroundTruth(tmp, 16000, 100).background_recordings()
        {'1-1-A-0': 'rain.ogg'}
        """
        with open(self.data_folder / GROUND_TRUTH_CSV, newline="", encoding="utf-8") as fin:
            return {
                row["id"]: row["background_recording"]
                for row in csv.DictReader(fin)
                if row.get("background_recording")
            }

    def _read(self, path):
        """A source as the clip was read (mono, resampled, padded / cropped), not normalised."""
        return pad_or_crop(read_audio(path, self.sample_rate), self.n_samples)

    def sources(self, ids, clips, mixture=None):
        """Target and background of each clip, scaled like the clip: (B, T) each.

        The clip was peak-normalised when loaded (`load_clip`); both sources get
        the same gain, 1 / max |target + background|, so they sum to the clip.
        A mismatch (sources of other audio) is a ValueError, never a wrong score.

        Arguments
        ---------
        ids : list of str
            The clips' ids.
        clips : torch.Tensor
            The dataset's clips as loaded (B, T), before any interference.
        mixture : data_prep.interference.Mixture, optional
            How the evaluated clips were made from `clips` (`Interference.mix`):
            then the sources are those of `mixture.wavs`, the target scaled by
            `mixture.gain` and the background scaled by it plus `mixture.added`
            (target + background == mixture.wavs up to float rounding).
        """
        missing = [clip_id for clip_id in ids if clip_id not in self.paths]
        if missing:
            raise ValueError(
                f"{self.data_folder / GROUND_TRUTH_CSV} has no row for clip(s) {missing}: the "
                "audio and the ground truth come from different datasets; regenerate the "
                "synthetic dataset (data_prep/synthetic_prepare.py)."
            )
        target = torch.stack([self._read(self.paths[clip_id][0]) for clip_id in ids])  # (B, T)
        background = torch.stack([self._read(self.paths[clip_id][1]) for clip_id in ids])
        gain = 1.0 / (target + background).abs().amax(dim=1, keepdim=True).clamp(min=EPS)
        target, background = gain * target, gain * background
        error = ((target + background) - clips.cpu()).abs().amax(dim=1)  # (B,)
        if (error > SOURCE_CHECK_ATOL).any():
            bad = [clip_id for clip_id, e in zip(ids, error.tolist()) if e > SOURCE_CHECK_ATOL]
            raise ValueError(
                f"The sources of clip(s) {bad} do not sum to the clip (max error "
                f"{error.max().item():.3g}): the audio/ and sources/ folders of "
                f"{self.data_folder} do not match, or the clip's audio file holds NaN or "
                "infinite samples (read as 0: see the warnings above). Regenerate the dataset "
                "(data_prep/synthetic_prepare.py, or collection_prepare.py for your own sounds)."
            )
        target, background = target.to(clips.device), background.to(clips.device)
        if mixture is None:
            return target, background
        return mixture.gain * target, mixture.gain * background + mixture.added
