"""Small random models covering every layer kind and parameter that ``project`` handles."""
from __future__ import annotations

import torch
from torch import nn


class MixedNet(nn.Module):
    """Conv1d, Conv2d (stride, dilation, 'same', groups, depthwise, reflect padding), Conv3d,
    a shared module called twice, and a Linear over leading (token) dims.

    Input: ``[N, 3, 9, 11]`` float32. Output: ``[N, num_classes]`` logits.
    """

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(6, 6, (2, 3), padding="same", dilation=(2, 1), groups=3)
        self.dw = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6, padding_mode="reflect")
        self.c3d = nn.Conv3d(1, 2, (2, 3, 2), stride=(1, 2, 1), padding=(1, 0, 1))
        self.c1d = nn.Conv1d(6, 5, 4, stride=3, padding="valid", dilation=1)
        self.shared = nn.Linear(5, 5)
        self.tok = nn.Linear(5, 4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))  # [N, 6, 5, 6]
        x = torch.relu(self.c2(x))
        x = torch.relu(self.dw(x))
        v = self.c3d(x[:, :1].unsqueeze(1).repeat(1, 1, 2, 1, 1))  # [N, 2, 3, 2, 7]
        s = x.flatten(2)  # [N, 6, 30]
        s = torch.relu(self.c1d(s)) + v.flatten(2)[:, :1, :9]  # [N, 5, 9]
        t = s.transpose(1, 2)  # tokens [N, 9, 5]
        t = torch.relu(self.shared(torch.relu(self.shared(t))))
        t = torch.relu(self.tok(t)).mean(1)
        return self.head(t)


PROJECTED = ["c1", "c2", "dw", "c3d", "c1d", "shared", "tok", "head"]
