"""ONNX export and ONNX Runtime models that behave like any other classifier.

A model is exported with two outputs, logits and the penultimate features,
so an ONNX candidate goes through every check (the embedding-based ones
too). Int8 comes from ONNX Runtime's dynamic quantization (int8 weights,
activations quantized per batch): measured here it is the fastest int8 path
on the CPU, where PyTorch's maintained path (torchao) is 20x slower than
fp32. The ONNX bytes live in a uint8 buffer, so a candidate is saved in
safetensors like every other one and its content hash covers the graph.

    data = export_onnx(model, example)           # fp32 graph
    model = OnnxClassifier(quantize_int8(data))  # runs on ONNX Runtime
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError, require

TRANSFORMS = ("onnx_fp32", "onnx_int8", "onnx_static_int8")
_FLOPS_KEY = "assay_flops_per_sample"


class _LogitsAndFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.logits_and_features(x)


def export_onnx(model: nn.Module, example: torch.Tensor, flops_per_sample: float | None = None) -> bytes:
    """The model as an ONNX graph (dynamic batch size) with outputs ``logits`` and ``features``.

    Args:
        model: a ``zoo.Classifier`` in float32.
        example: a batch of at least two inputs, used to trace the graph.
        flops_per_sample: stored in the graph's metadata, since ONNX Runtime
            cannot count them.
    """
    require("onnxscript", "edge")
    onnx = require("onnx", "edge")
    model = model.cpu().eval()
    example = example.cpu()
    if len(example) < 2:
        example = torch.cat([example, example])  # a batch of one would be specialised to a fixed size
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                _LogitsAndFeatures(model), (example,), None, input_names=["x"], output_names=["logits", "features"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
            )
            program.optimize()
        except Exception as error:  # noqa: BLE001 -- the exporter raises many types; the user needs one line
            raise ModelError(f"ONNX export of {type(model).__name__}: failed ({str(error).strip().splitlines()[0][:200]}); "
                             "export its float parent, or keep it as a PyTorch candidate") from None
    proto = program.model_proto
    _strip_debug_info(proto)
    _check_dynamic_batch(proto.SerializeToString(), model, example)
    if flops_per_sample is not None:
        onnx.helper.set_model_props(proto, {_FLOPS_KEY: repr(float(flops_per_sample))})
    return proto.SerializeToString()


def _strip_debug_info(proto) -> None:
    """Drop the exporter's per-node debug metadata (Python stack traces, scope names).

    The stack traces hold the source files' paths on the exporting machine, so
    they would leak that machine's layout into a shipped model and make the
    graph's bytes, size and content hash depend on where assay is installed.
    """
    graphs = [proto.graph, *(f for f in proto.functions)]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            graphs += [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
        for value in (*graph.input, *graph.output, *getattr(graph, "value_info", ())):
            del value.metadata_props[:]


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(data: bytes) -> bytes:
    """ONNX Runtime dynamic int8 of an fp32 graph (weights int8 per channel, activations per batch)."""
    quantization = require("onnxruntime.quantization", "edge")
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _quiet_root_logger():  # its pre-processing hints are not for assay's users
                quantization.quantize_dynamic(str(source), str(target), weight_type=quantization.QuantType.QInt8, per_channel=True)
        return target.read_bytes()


def _check_dynamic_batch(data: bytes, model: nn.Module, example: torch.Tensor) -> None:
    """The graph must take another batch size and agree with PyTorch; a tracer that froze a shape is caught here."""
    batch = torch.cat([example, example[:1]])  # one more row than was traced
    try:
        logits = OnnxClassifier(data)(batch)
    except Exception as error:  # noqa: BLE001 -- onnxruntime raises its own exception types
        raise ModelError(f"ONNX export: the graph does not accept a batch of {len(batch)} ({str(error).splitlines()[0]}); "
                         "the model uses a Python-level shape (e.g. len(x)) that tracing froze") from None
    with torch.no_grad():
        expected = model(batch)
    if not torch.allclose(logits, expected, atol=1e-3, rtol=1e-3):
        raise ModelError(f"ONNX export: the graph's logits differ from PyTorch's by {(logits - expected).abs().max().item():.3g}; the export is not faithful")


def quantize_static_int8(data: bytes, calibration: torch.Tensor, batch_size: int = 32) -> bytes:
    """ONNX Runtime static int8 (QDQ): activation ranges fixed from ``calibration`` inputs."""
    quantization = require("onnxruntime.quantization", "edge")
    batches = [{"x": calibration[i : i + batch_size].numpy()} for i in range(0, len(calibration), batch_size)]

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _quiet_root_logger():
                quantization.quantize_static(str(source), str(target), Reader(), quant_format=quantization.QuantFormat.QDQ,
                                             per_channel=True, weight_type=quantization.QuantType.QInt8,
                                             activation_type=quantization.QuantType.QUInt8)
        return target.read_bytes()


def to_transform(data: bytes, transform: str, calibration: torch.Tensor | None = None) -> bytes:
    """fp32 ONNX bytes turned into the named transform's bytes (static int8 needs ``calibration`` inputs)."""
    if transform == "onnx_fp32":
        return data
    if transform == "onnx_int8":
        return quantize_int8(data)
    if transform == "onnx_static_int8":
        if calibration is None:
            raise ValueError("static int8 needs calibration inputs")
        return quantize_static_int8(data, calibration)
    raise ValueError(f"unknown ONNX transform '{transform}'; known: {', '.join(TRANSFORMS)}")


class OnnxClassifier(nn.Module):
    """An ONNX graph run by ONNX Runtime on the CPU, with the ``Classifier`` interface.

    Args:
        data: the graph's bytes, or a uint8 tensor holding them (as saved).
        threads: intra-op threads; default as many as torch uses.
    """

    frozen_prefixes: tuple[str, ...] = ()
    differentiable = False  # ONNX Runtime computes no gradients

    def __init__(self, data: bytes | torch.Tensor, threads: int | None = None) -> None:
        super().__init__()
        raw = data if isinstance(data, torch.Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self.register_buffer("onnx", raw.clone())
        self.threads = threads
        self._session = None
        onnx = require("onnx", "edge")
        try:
            self._proto = onnx.load_model_from_string(self.graph_bytes())
        except Exception as error:  # onnx raises its own decode errors
            raise ModelError(f"ONNX model: cannot read the graph ({str(error).splitlines()[0]}); export it again") from None
        outputs = [o.name for o in self._proto.graph.output]
        if not outputs:
            raise ModelError("ONNX model: the graph has no outputs; export it with a logits output")
        self._has_features = "features" in outputs
        props = {p.key: p.value for p in self._proto.metadata_props}
        self.flops_per_sample = float(props[_FLOPS_KEY]) if _FLOPS_KEY in props else None

    @property
    def has_features(self) -> bool:
        """Whether the graph has a ``features`` output (assay's exports do; another tool's may not)."""
        return self._has_features

    @classmethod
    def from_file(cls, path: Path) -> OnnxClassifier:
        """A ``.onnx`` file as a classifier."""
        return cls(Path(path).read_bytes())

    def graph_bytes(self) -> bytes:
        return self.onnx.numpy().tobytes()

    @property
    def session(self):
        if self._session is None:
            ort = require("onnxruntime", "edge")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
            options.log_severity_level = 3
            self._session = ort.InferenceSession(self.graph_bytes(), options, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0]
        return self._session

    def _run(self, x: torch.Tensor) -> list[np.ndarray]:
        session = self.session
        array = x.detach().cpu().numpy()
        if "int64" in self._input.type:
            array = array.astype(np.int64, copy=False)
        elif "float" in self._input.type:
            array = array.astype(np.float32, copy=False)
        return session.run(None, {self._input.name: array})

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._run(x)
        if not self._has_features:
            raise ModelError("ONNX model: the graph has no 'features' output, so embedding checks cannot run; export it with assay")
        return torch.from_numpy(out[0]), torch.from_numpy(out[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(x)[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features(x)[1]

    def parameter_count(self) -> int:
        """Weights in the graph's initializers (int8 and float alike; scales and zero points excluded)."""
        total = 0
        for tensor in self._proto.graph.initializer:
            if tensor.name.endswith(("_scale", "_zero_point")):
                continue
            total += int(np.prod(tensor.dims)) if tensor.dims else 1
        return total

    def __getstate__(self):  # sessions do not pickle; deepcopy rebuilds one
        state = self.__dict__.copy()
        state["_session"] = None
        return state
