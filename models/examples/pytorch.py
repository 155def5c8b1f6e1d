"""PyTorch examples: an MLP as TorchScript ``model.pt``, and the same network as an eager
``state_dict`` (``model.pth``) that only its ``code/inference.py`` ``model_fn`` can rebuild."""

from pathlib import Path

from models import data
from models.layout import model_dir

# The user code of "pytorch-eager": the module class, and a model_fn that rebuilds it from the
# state_dict. Self-contained, as a user's code/inference.py is.
INFERENCE_PY = '''\
"""Rebuilds the eager MLP from its state_dict; prediction uses the server's default."""

import os

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, features=4, hidden=16, classes=3):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return torch.softmax(self.layers(x), dim=-1)


def model_fn(model_dir):
    model = MLP()
    state = torch.load(os.path.join(model_dir, "model.pth"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
'''


def _mlp(torch, features: int = 4, hidden: int = 16, classes: int = 3):
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))

        def forward(self, x):
            return torch.softmax(self.layers(x), dim=-1)

    return MLP()


def _train(torch, model, X, y, epochs: int = 60):
    inputs = torch.as_tensor(X, dtype=torch.float32)
    labels = torch.as_tensor(y, dtype=torch.long)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(epochs):
        optimiser.zero_grad()
        # The model ends in softmax: train on the log of its probabilities.
        loss = torch.nn.functional.nll_loss(torch.log(model(inputs) + 1e-9), labels)
        loss.backward()
        optimiser.step()
    return model.eval()


def build(root: Path) -> list[str]:
    import torch

    torch.manual_seed(0)
    X, y = data.classification(seed=5)
    model = _train(torch, _mlp(torch), X, y)
    torch.jit.script(model).save(str(model_dir(root, "pytorch-mlp") / "model.pt"))

    torch.manual_seed(1)
    X, y = data.classification(seed=6)
    eager = _train(torch, _mlp(torch), X, y)
    target = model_dir(root, "pytorch-eager")
    torch.save(eager.state_dict(), target / "model.pth")
    (target / "code").mkdir()
    (target / "code" / "inference.py").write_text(INFERENCE_PY)
    return ["pytorch-mlp", "pytorch-eager"]
