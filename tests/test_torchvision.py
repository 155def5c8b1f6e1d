"""torchvision beside the pinned torch (issue 8 point 2): a user's code/inference.py that builds a
torchvision model and preprocesses images with torchvision transforms, served over HTTP.

The AWS PyTorch containers ship torchvision, and scripts written for them import it; it cannot come
from the model's code/requirements.txt (pip would bring a second torch), so the image has it.
"""

import io
import json

import numpy as np
import pytest
import torch
import torchvision  # pinned in requirements/runtime.txt: its absence is a failure, not a skip
from PIL import Image
from torchvision import transforms

# What the user ships: a torchvision architecture rebuilt by model_fn from its state_dict, and
# torchvision transforms turning an uploaded image into the network's input.
INFERENCE = """
import io, json, os

import torch
import torchvision
from PIL import Image
from sagemaker_inference import errors
from torchvision import transforms

PREPROCESS = transforms.Compose([
    transforms.Resize(40),
    transforms.CenterCrop(32),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])

def model_fn(model_dir):
    model = torchvision.models.squeezenet1_1(num_classes=3)
    state = torch.load(os.path.join(model_dir, "model.pth"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()

def input_fn(body, content_type):
    if content_type not in ("image/png", "image/jpeg", "application/x-image"):
        raise errors.UnsupportedFormatError(content_type)  # as the AWS examples do: a 415
    return PREPROCESS(Image.open(io.BytesIO(body)).convert("RGB")).unsqueeze(0)

def predict_fn(data, model):
    with torch.no_grad():
        return torch.softmax(model(data), dim=1)

def output_fn(prediction, accept):
    return json.dumps({"probabilities": prediction.tolist(), "torchvision": torchvision.__version__})
"""

PREPROCESS = transforms.Compose([
    transforms.Resize(40), transforms.CenterCrop(32), transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def image_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(num_classes=3).eval()
    directory = tmp_path_factory.mktemp("vision") / "squeezenet" / "model"
    (directory / "code").mkdir(parents=True)
    torch.save(model.state_dict(), directory / "model.pth")
    (directory / "code" / "inference.py").write_text(INFERENCE)
    return directory, model


def test_inference_script_with_torchvision_transforms_and_model(start_server, vision_model):
    directory, model = vision_model
    server = start_server(MODEL_SERVER_MODEL_DIR=directory)
    for seed in (1, 2):
        body = image_png(seed)
        response = server.client.post("/invocations", content=body, headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.text
        answer = json.loads(response.content)
        assert answer["torchvision"] == torchvision.__version__
        with torch.no_grad():
            expected = torch.softmax(model(PREPROCESS(Image.open(io.BytesIO(body)).convert("RGB")).unsqueeze(0)), dim=1)
        np.testing.assert_allclose(answer["probabilities"], expected.numpy(), rtol=1e-4, atol=1e-6)
    # the script's own refusal of a body it cannot use: 415 naming the type, no traceback
    response = server.client.post("/invocations", content=b"1,2,3", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415 and "text/csv" in response.text
    assert "Traceback" not in response.text
