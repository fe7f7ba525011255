"""torch as the oracle: its forward, every 4-D module output and Grad-CAM from autograd through hooks.

A module called several times in one forward (a shared activation) names its first call's output
by its path, later calls' ``path#k`` (k = 1, 2, ...)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from real.common import gradcam_from


class TorchOracle:
    """An eval-mode torch model seen through its modules' outputs.

    Args:
        model: the torch module (NCHW input, logits output).
    """

    def __init__(self, model: Any) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()

    def _forward(self, batch: np.ndarray, keep: str | None = None) -> tuple[Any, dict[str, Any]]:
        """The logits and each module call's 4-D output (only ``keep``'s, its gradient retained, if given)."""
        outputs: dict[str, Any] = {}
        calls: Counter[str] = Counter()

        def hook(path: str):
            def record(module, inputs, output):
                name = f"{path}#{calls[path]}" if calls[path] else path
                calls[path] += 1
                if isinstance(output, self.torch.Tensor) and output.dim() == 4 and keep in (None, name):
                    if keep is not None:
                        output.retain_grad()
                    outputs[name] = output

            return record

        handles = [m.register_forward_hook(hook(p)) for p, m in self.model.named_modules() if p]
        try:
            with self.torch.set_grad_enabled(keep is not None):
                logits = self.model(self.torch.tensor(batch))
        finally:
            for handle in handles:
                handle.remove()
        return logits, outputs

    def logits(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self.torch.tensor(batch)).numpy()

    def activations(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {name: v.detach().numpy() for name, v in self._forward(batch)[1].items()}

    def gradcam(self, batch: np.ndarray, layer: str, targets: list[int]) -> np.ndarray:
        logits, outputs = self._forward(batch, keep=layer)
        feature = outputs[layer]
        logits.gather(1, self.torch.tensor(targets)[:, None]).sum().backward()
        return gradcam_from(feature.detach().numpy(), feature.grad.numpy())
