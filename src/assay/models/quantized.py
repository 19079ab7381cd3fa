"""Int8 structure for models: apply it, and move its weights in and out of plain tensors.

Dynamic int8 uses PyTorch's eager ``quantize_dynamic`` with per-channel
weight scales. It is deprecated upstream in favour of torchao, but torchao's
CPU int8 path measured 20x slower than fp32 on this class of machine, while
the fbgemm/x86 kernels behind ``quantize_dynamic`` are fast; the deprecation
warning is silenced here on purpose. A quantized model is saved as plain
tensors (int8 values, scales, zero points) so it fits in safetensors; loading
rebuilds the architecture, applies the same structure and sets the weights.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

TRANSFORMS = ("dynamic_int8", "fp16", "bf16")
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _dynamic_types() -> tuple[type, type]:
    """PyTorch's dynamic int8 Linear, and the base of its dynamic int8 GRU and LSTM."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear
        from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase

    return Linear, RNNBase


def _qtensor_out(out: dict[str, torch.Tensor], key: str, w: torch.Tensor) -> None:
    """A quantized tensor as plain tensors: int8 values, scales, zero points."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out[f"{key}.int8"] = w.int_repr().contiguous()
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            out[f"{key}.scales"] = w.q_per_channel_scales().to(torch.float64)
            out[f"{key}.zero_points"] = w.q_per_channel_zero_points().to(torch.int64)
        else:
            out[f"{key}.scales"] = torch.tensor([w.q_scale()], dtype=torch.float64)
            out[f"{key}.zero_points"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)


def _qtensor_in(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    values, scales, zero_points = (tensors[f"{key}.{k}"] for k in ("int8", "scales", "zero_points"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(scales) == 1 and values.shape[0] != 1:
            return torch._make_per_tensor_quantized_tensor(values, float(scales[0]), int(zero_points[0]))
        return torch._make_per_channel_quantized_tensor(values, scales, zero_points, 0)


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose Linear, GRU and LSTM layers run int8 matmuls (weights per-channel, activations per batch)."""
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        model = copy.deepcopy(model).cpu().eval()  # quantized kernels are CPU-only
        spec = {kind: per_channel_dynamic_qconfig for kind in (nn.Linear, nn.GRU, nn.LSTM)}
        model = quantize_dynamic(model, spec, dtype=torch.qint8)
    model.frozen_prefixes = ()  # int8 weights are no longer the pretrained ones: save them all
    return model


class HalfPrecision(nn.Module):
    """A model whose weights are held in fp16 or bf16; float inputs are cast in, outputs cast back to float32."""

    frozen_prefixes: tuple[str, ...] = ()  # the weights are no longer the pretrained ones: save them all

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype) if x.is_floating_point() else x  # token ids stay integers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._cast(x)).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(self._cast(x)).float()

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.model.logits_and_features(self._cast(x))
        return logits.float(), features.float()


def apply_transform(model: nn.Module, name: str) -> nn.Module:
    """Apply a named structural transform (as recorded in a candidate's provenance)."""
    if name == "dynamic_int8":
        return quantize_dynamic_int8(model)
    if name in _HALF:
        import copy

        return HalfPrecision(copy.deepcopy(model).cpu().eval(), _HALF[name])
    raise ValueError(f"unknown model transform '{name}'; known: {', '.join(TRANSFORMS)}")


def export_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor needed to rebuild ``model``'s weights, as plain tensors."""
    qlinear, qrnn = _dynamic_types()
    frozen = getattr(model, "frozen_prefixes", ())  # pretrained and unchanged: re-read from the source, not saved
    out = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not v.is_quantized and not k.startswith(frozen or ("\0",))
    }
    for prefix, module in model.named_modules():
        if isinstance(module, qlinear):
            for key in [k for k in out if k.startswith(f"{prefix}._packed_params")]:
                del out[key]
            _qtensor_out(out, f"{prefix}.qweight", module.weight())
            bias = module.bias()
            if bias is not None:
                out[f"{prefix}.qweight.bias"] = bias.detach().contiguous()
        elif isinstance(module, qrnn):
            for key in [k for k in out if k.startswith(f"{prefix}._all_weight_values")]:
                del out[key]
            weights = module._weight_bias()
            for name, w in weights["weight"].items():
                _qtensor_out(out, f"{prefix}.qrnn.{name}", w)
            for name, b in weights["bias"].items():
                out[f"{prefix}.qrnn.{name}"] = b.detach().contiguous()
    return out


def import_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Load ``tensors`` (from ``export_tensors``) into ``model``; return problems found.

    Tensors are copied one by one rather than through ``load_state_dict``:
    quantized Linear layers re-pack weights there in a way that, measured
    here, changes their outputs.
    """
    qlinear, qrnn = _dynamic_types()
    expected = set(export_tensors(model))
    problems = [f"missing tensor '{k}'" for k in sorted(expected - set(tensors))]
    problems += [f"unexpected tensor '{k}'" for k in sorted(set(tensors) - expected)]
    if problems:
        return problems
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for prefix, module in model.named_modules():
            if isinstance(module, qlinear):
                module.set_weight_bias(_qtensor_in(tensors, f"{prefix}.qweight"), tensors.get(f"{prefix}.qweight.bias"))
            elif isinstance(module, qrnn):
                current = module._weight_bias()
                module.set_weight_bias({  # one flat dict of every layer's weights and biases
                    **{name: _qtensor_in(tensors, f"{prefix}.qrnn.{name}") for name in current["weight"]},
                    **{name: tensors[f"{prefix}.qrnn.{name}"] for name in current["bias"]},
                })
        for key, value in tensors.items():
            if ".qweight." in key or ".qrnn." in key:
                continue
            target = state[key]
            if target.shape != value.shape:
                return [f"tensor '{key}' has shape {tuple(value.shape)}, the architecture expects {tuple(target.shape)}"]
            target.copy_(value)
    return []
