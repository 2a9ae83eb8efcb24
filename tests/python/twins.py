# The PyTorch twins of baton's zoo (bench/pytorch_models.py, loaded by path) and the safetensors
# metadata that ties a file to one of them: "model", "input" ("1x28x28"), "classes", "mean", "std".
import importlib.util
import json
import os

import torch

_spec = importlib.util.spec_from_file_location(
    "pytorch_models", os.path.join(os.path.dirname(__file__), "..", "..", "bench", "pytorch_models.py"))
pytorch_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pytorch_models)

METADATA_KEYS = ("model", "input", "classes", "mean", "std")


def parse_input(text):
    """(C, H, W) of "CxHxW"."""
    sizes = tuple(int(size) for size in text.split("x"))
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"input '{text}' is not CxHxW, e.g. 1x28x28")
    return sizes


def metadata(model, input_shape, classes, mean, std):
    """The __metadata__ strings of a file holding `model` for input_shape, classes and normalisation."""
    return {"model": model, "input": "x".join(map(str, input_shape)), "classes": str(classes),
            "mean": json.dumps(mean), "std": json.dumps(std)}


def twin_for(meta):
    """(twin built as the metadata says, (C, H, W), mean list, std list); fails on missing or bad keys."""
    missing = [key for key in METADATA_KEYS if key not in meta]
    if missing:
        raise ValueError(f"__metadata__ lacks {missing}; it has {sorted(meta)}")
    if meta["model"] not in pytorch_models.ZOO:
        raise ValueError(f"model '{meta['model']}' is not in the zoo: {list(pytorch_models.ZOO)}")
    input_shape = parse_input(meta["input"])
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    if len(mean) != input_shape[0] or len(std) != input_shape[0]:
        raise ValueError(f"mean {mean} and std {std} need one value per channel of input {meta['input']}")
    model, _, _ = pytorch_models.build(meta["model"], input_shape, int(meta["classes"]))
    return model, input_shape, mean, std


def state_arrays(model):
    """The twin's state_dict as {name: numpy array}, in state_dict order."""
    return {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}


def load_arrays(model, arrays):
    """load_state_dict(strict=True) from numpy arrays, after checking each dtype matches the twin's."""
    expected = model.state_dict()
    wrong = [f"{name}: {array.dtype} instead of {expected[name].dtype}" for name, array in arrays.items()
             if name in expected and torch.from_numpy(array).dtype != expected[name].dtype]
    if wrong:
        raise ValueError("wrong dtypes: " + "; ".join(wrong))
    model.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()}, strict=True)
