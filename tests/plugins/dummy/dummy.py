"""A tiny residual conv net that exercises the whole plugin contract (train/save/load/run).

``DUMMY_CRASH_AT_STEP=k`` makes training raise at step k, to test resuming an interrupted
run without changing the configuration the checkpoint is keyed by.
"""

import os

import torch
import torch.nn.functional as F

from deblurbench.methods.base import Method


class Net(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.head = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.tail = torch.nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(F.relu(self.head(x)))


class Dummy(Method):
    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.net = Net(int(params["channels"])).to(device)

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(batch).clamp(0, 1)

    def train(self, loader, params, callbacks) -> None:
        opt = callbacks.track(torch.optim.Adam(self.net.parameters(), lr=float(params["lr"])))
        net, opt = callbacks.prepare(self.net, opt)
        crash_at = int(os.environ.get("DUMMY_CRASH_AT_STEP", "0"))
        for batch in loader:
            if callbacks.global_step + 1 == crash_at:
                raise RuntimeError(f"crash requested at step {crash_at}")
            # Noise from torch's RNG: a resumed run must restore the RNG to match.
            x = batch["blurry"] + float(params["noise"]) * torch.randn_like(batch["blurry"])
            loss = F.l1_loss(net(x), batch["sharp"])
            opt.zero_grad()
            callbacks.backward(loss)
            opt.step()
            if not callbacks.step(loss.item()):
                break

    def state_dict(self):
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state) -> None:
        self.net.load_state_dict(state["net"])
