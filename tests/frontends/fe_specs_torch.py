"""PyTorch objects named by Python specs in the import tests (fe_specs_torch:<name>)."""

import torch


class SingularValues(torch.nn.Module):
    """torch.linalg.svd has no ONNX function in torch.onnx."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x)[1] + 1.0


class BatchSpecialized(torch.nn.Module):
    """Reshapes with a hard-coded batch size, so the batch cannot be dynamic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(2, 3, 2).sum(dim=2)


class Embedder(torch.nn.Module):
    """Integer token ids in: checks the ':int64' dtype suffix of --input-shape."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(10, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table(tokens).mean(dim=1)


def varargs_model():
    class VarArgs(torch.nn.Module):
        def forward(self, *xs):
            return xs[0]

    return VarArgs()


class DictHeads(torch.nn.Module):
    """Returns a dict: the keys become the ONNX output names."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"mean": h.mean(dim=1), "features": torch.tanh(h)}
