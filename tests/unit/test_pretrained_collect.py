"""recipes.core.brains.load_pretrained: the frozen classifier a run loads is the one it is given."""

import torch
from speechbrain.utils.parameter_transfer import Pretrainer

from recipes.core.brains import load_pretrained


def test_a_run_folder_given_another_classifier_loads_that_one(tmp_path):
    """Was: the second run of a recipe into the same output folder with another
    --classifier_folder loaded the first classifier (the link its Pretrainer had
    collected), while its metrics named the second one."""
    for name, value in (("first", 1.0), ("second", 2.0)):
        (tmp_path / name).mkdir()
        torch.save({"weight": torch.full((2, 3), value), "bias": torch.zeros(2)}, tmp_path / name / "classifier.ckpt")
    collect_in = tmp_path / "run" / "save" / "pretrained"
    collect_in.parent.mkdir(parents=True)
    for name, value in (("first", 1.0), ("second", 2.0), ("first", 1.0)):
        classifier = torch.nn.Linear(3, 2)
        paths = {"classifier": str(tmp_path / name / "classifier.ckpt")}
        load_pretrained(Pretrainer(collect_in, {"classifier": classifier}, paths), paths)
        assert torch.equal(classifier.weight, torch.full((2, 3), value)), name
        assert (collect_in / "classifier.ckpt").resolve() == (tmp_path / name / "classifier.ckpt").resolve()
