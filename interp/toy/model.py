"""The toy classifier: a residual MLP 512-512-256-512 with GELU and LayerNorm, and a linear
head to m×8 logits; trained with Adam and cross-entropy on an 80/20 split, keeping the best
validation checkpoint (cached on disk).

Residual connections (seed 002: "residual connections across all layers"): ``residual="all"``
(the default) gives every block one, through a bias-free linear projection where the width
changes (m·8 → 512, 512 → 256, 256 → 512) and the identity where it is kept;
``residual="matching"`` keeps the earlier model, with a residual only where widths match.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from interp.progress import progress as tqdm
from interp.toy.data import N_VALUES, AttributeWorld

HIDDEN = (512, 512, 256, 512)


RESIDUALS = ("all", "matching")


class Block(nn.Module):
    """Linear -> GELU -> LayerNorm, plus a skip connection: the identity where the width is
    kept, a bias-free linear projection where it changes (``residual="all"``), or none there
    (``residual="matching"``)."""

    def __init__(self, d_in: int, d_out: int, residual: str = "all"):
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"residual={residual!r}; allowed: {list(RESIDUALS)}")
        self.linear, self.norm = nn.Linear(d_in, d_out), nn.LayerNorm(d_out)
        self.residual = d_in == d_out or residual == "all"
        self.skip = (
            nn.Identity() if d_in == d_out else (nn.Linear(d_in, d_out, bias=False) if residual == "all" else None)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(nn.functional.gelu(self.linear(x)))
        return self.skip(x) + h if self.residual else h


class ToyMLP(nn.Module):
    """The toy steering MLP: ``8m`` inputs, hidden blocks (with residual connections per ``residual``) and one 8-way
    head per attribute."""

    def __init__(self, m: int, hidden: tuple[int, ...] = HIDDEN, residual: str = "all"):
        super().__init__()
        dims = (m * 8, *hidden)
        self.m, self.hidden, self.residual = m, tuple(hidden), residual
        self.blocks = nn.ModuleList(Block(a, b, residual) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(hidden[-1], m * N_VALUES)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def init_args(self) -> dict:
        """What rebuilds this module (with its state dict) from a stored result: interp.serialize."""
        return {"m": self.m, "hidden": self.hidden, "residual": self.residual}

    def forward(self, x: Tensor, edit_layer: int | None = None, edit=None) -> Tensor:
        """Logits ``[n, m, 8]``; ``edit`` (a callable on ``[n, width]``) replaces the output of
        block ``edit_layer`` — how a steering adapter is applied."""
        if edit_layer is not None and not 0 <= edit_layer < self.n_layers:
            raise ValueError(f"edit_layer={edit_layer} out of range 0..{self.n_layers - 1}")
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == edit_layer:
                x = edit(x)
        return self.head(x).view(x.shape[0], self.m, N_VALUES)

    def activations(self, x: Tensor, layer: int) -> Tensor:
        """Output of block ``layer``."""
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == layer:
                return x
        raise ValueError(f"layer={layer} out of range 0..{self.n_layers - 1}")


@dataclass
class TrainConfig:
    """How the toy MLP is trained: samples, epochs, batch size, learning rate and seed."""

    n_samples: int = 100_000
    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    residual: str = "all"  # skip connections in every block ("all", seed 002) or only where widths match ("matching")


@torch.no_grad()
def accuracy(model: ToyMLP, x: Tensor, y: Tensor, batch: int = 4096) -> float:
    """Share of (sample, attribute) values predicted right."""
    model.eval()
    hits = sum(
        float((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).float().sum()) for i in range(0, len(x), batch)
    )
    return hits / y.numel()


def train_toy(world: AttributeWorld, cfg: TrainConfig, progress: bool = True) -> tuple[ToyMLP, dict]:
    """Train on ``cfg.n_samples`` samples (80/20 split) and return the best-validation model."""
    g = torch.Generator().manual_seed(cfg.seed)
    x, y = world.sample(cfg.n_samples, g)
    n_train = int(0.8 * cfg.n_samples)
    if n_train < 1 or cfg.n_samples - n_train < 1:
        raise ValueError(f"n_samples={cfg.n_samples} too small for an 80/20 split")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ToyMLP(world.m, residual=cfg.residual)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, best_acc, history = None, -1.0, []
    for epoch in tqdm(range(cfg.epochs), desc=f"toy MLP m={world.m}", disable=not progress):
        model.train()
        order = torch.randperm(n_train, generator=g)
        for i in range(0, n_train, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]).flatten(0, 1), y[idx].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = accuracy(model, x[n_train:], y[n_train:])
        history.append(val)
        if val > best_acc:
            best, best_acc = copy.deepcopy(model.state_dict()), val
    model.load_state_dict(best)
    model.eval()
    return model, {
        "val_accuracy": best_acc,
        "val_history": history,
        "n_train": n_train,
        "n_val": cfg.n_samples - n_train,
    }
