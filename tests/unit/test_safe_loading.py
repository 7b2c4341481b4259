"""What a user loads is data: checkpoints with weights_only=True, inference yamls that build
only known classes (recipes/core/brains.py, recipes/interpreters/inference.py)."""

import pytest
import torch

from recipes.core.brains import load_state_dict_file
from recipes.interpreters.inference import UntrustedYamlError, check_inference_yaml


class Payload:
    """A pickled object: unpickling it would run code a checkpoint should never run."""


def test_a_checkpoint_holding_more_than_tensors_is_refused(tmp_path):
    path = tmp_path / "classifier.ckpt"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(ValueError, match="holds more than tensors"):
        load_state_dict_file(path, "classifier")
    torch.save({"w": torch.ones(2)}, path)  # a plain state dict loads
    assert torch.equal(load_state_dict_file(path, "classifier")["w"], torch.ones(2))


@pytest.mark.parametrize("tag", ["!apply:torch.save [1, x.pt]", "!apply:speechbrain.utils.data_utils.download_file"])
def test_an_inference_yaml_may_not_call_even_a_trusted_modules_functions(tag):
    """`!apply:` runs a function at load time: refused even in torch or speechbrain, unless
    the user trusts the folder."""
    text = f"a: {tag}\n"
    with pytest.raises(UntrustedYamlError, match="may only build classes"):
        check_inference_yaml(text, "x.yaml")
    assert check_inference_yaml(text, "x.yaml", trust_code=True) == text
