#!/usr/bin/env python
"""Train the three Fashion-MNIST canvas CNNs on the CPU and export them to ONNX.

Writes ``models/fashion/{vgg,resnet,inception}.onnx`` (input ``image`` N x 1 x 112 x 112, grey
in [0, 1]: fixtrace's ``raw`` preset; output ``logits`` N x 10) and ``accuracy.json`` with each
model's accuracy on 10,000 test canvases (the Fashion-MNIST test items, never trained on).

Usage::

    apt-get install dataset-fashion-mnist
    pip install torch==2.13.0 onnx onnxruntime pillow
    python models/fashion/train.py [--arch vgg resnet inception] [--epochs N] [--train 25000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from architectures import ARCHITECTURES  # noqa: E402
from canvas import canvases  # noqa: E402

#: Epochs per architecture: the plain VGG stack needs more to reach the others' accuracy.
EPOCHS = {"vgg": 6, "resnet": 4, "inception": 4}


def as_arrays(split: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (n, 1, 112, 112) in [0, 1] and int64 (n,) labels."""
    made = canvases(split, count, seed)
    return np.stack([c.pixels for c in made])[:, None].astype(np.float32) / 255.0, np.array([c.label for c in made])


def accuracy(predict, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    right = sum(int((predict(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return right / len(x)


def train(arch: str, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = ARCHITECTURES[arch]()
    steps = epochs * (len(x) // 128)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        total = 0.0
        for k in range(len(x) // 128):
            pick = order[k * 128 : (k + 1) * 128]
            batch = torch.from_numpy(x[pick])
            if rng.random() < 0.5:
                batch = batch.flip(3)  # garments are left-right symmetric classes
            loss = loss_fn(model(batch), torch.from_numpy(y[pick]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        print(f"{arch} epoch {epoch + 1}/{epochs}: loss {total / (len(x) // 128):.3f}  {time.time() - t0:.0f}s", flush=True)
    return model.eval()


def export(model: nn.Module, path: Path) -> None:
    torch.onnx.export(
        model,
        torch.zeros(1, 1, 112, 112),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--epochs", type=int, help="epochs for every architecture (default: EPOCHS)")
    parser.add_argument("--train", type=int, default=25000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x, y = as_arrays("train", args.train, args.seed)
    x_test, y_test = as_arrays("test", 10000, args.seed + 1)
    record_path = HERE / "accuracy.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for arch in args.arch:
        t0 = time.time()
        epochs = args.epochs or EPOCHS[arch]
        model = train(arch, x, y, epochs, args.seed)
        path = HERE / f"{arch}.onnx"
        export(model, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        onnx_acc = accuracy(lambda b: session.run(None, {"image": b})[0], x_test, y_test)
        with torch.no_grad():
            torch_acc = accuracy(lambda b: model(torch.from_numpy(b)).numpy(), x_test, y_test)
        record[arch] = {
            "test_accuracy": round(onnx_acc, 4),
            "torch_test_accuracy": round(torch_acc, 4),
            "test_canvases": len(x_test),
            "train_canvases": len(x),
            "epochs": epochs,
            "train_seconds": round(time.time() - t0),
            "onnx_bytes": path.stat().st_size,
            "torch": torch.__version__,
        }
        print(arch, record[arch], flush=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
