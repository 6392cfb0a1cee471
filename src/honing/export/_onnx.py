"""ONNX export checked against PyTorch, an onnxruntime model that takes tensors, int8 ONNX models.

``to_onnx`` traces the model with ``torch.export`` (batch axis dynamic), converts the program
with the dynamo ONNX exporter into one self-contained file (no ``.data`` side file), runs it in
onnxruntime on the example and compares with PyTorch: a file that does not compute what the
model computes is never written. ``OnnxModel`` wraps an onnxruntime session so that it is called
like the model (float32 tensors in and out). ``quantize_onnx`` writes an int8 copy with
onnxruntime's quantizer: "dynamic" (int8 weights, activations quantized per batch at run time;
fast for MLPs, slow for convolutions, which become ConvInteger) or "static" (QDQ format, int8
weights per channel and uint8 activations whose ranges come from calibration batches; the one
that speeds up CNNs).

onnx, onnxscript and onnxruntime are imported only inside these functions
(``pip install "honing[compress]"``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import itertools
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from honing._core import ConfigError, atomic_save_file, check_choice, check_int, check_number

INPUT_NAME = "input"
OUTPUT_NAME = "output"
QUANTIZE_MODES = ("dynamic", "static")


class ExportMismatch(ConfigError):
    """The exported model's outputs differ from the PyTorch model's beyond the tolerance."""


@dataclass(frozen=True)
class OnnxExport:
    """What ``to_onnx`` wrote: the file, its size and the checked difference (None: not checked)."""

    path: Path
    max_abs_diff: float | None
    size_bytes: int


def require(module: str, what: str) -> Any:
    """Import an optional dependency of honing.export, or raise ConfigError saying what to install."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs the package {module!r}, which is not installed: "
                          'run `pip install "honing[compress]"`')
    return importlib.import_module(module)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute the exporters' chatter: warnings, log records below ERROR, stdout and stderr.

    torch.export prints whole graphs to stderr when tracing fails, and the ONNX exporter and
    onnxruntime's quantizer log progress; the errors that matter are raised, not printed. The
    muting is process-wide while it lasts (logging.disable, sys.stdout/sys.stderr).
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def trace_example(example: torch.Tensor) -> torch.Tensor:
    """The example with at least 2 rows: torch.export fixes a batch axis of size 1 to a constant."""
    if not isinstance(example, torch.Tensor) or example.dim() < 1 or example.shape[0] < 1:
        got = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise ConfigError(f"invalid example: got {got}; allowed: a tensor batch (N, ...) with N >= 1")
    return example if example.shape[0] >= 2 else example.expand(2, *example.shape[1:]).contiguous()


def export_program(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = True) -> Any:
    """``torch.export.export`` of ``model(example)`` with a dynamic batch axis, or a ConfigError."""
    x = trace_example(example) if dynamic_batch else example
    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        with quiet():
            return torch.export.export(model, (x,), dynamic_shapes=shapes)
    except Exception as e:  # torch.export raises many types (UserError, GuardOnDataDependentSymNode, ...)
        first = next((line for line in str(e).splitlines() if line.strip()), "")
        raise ConfigError(
            f"invalid model: it could not be traced by torch.export ({type(e).__name__}: {first}); allowed: a model "
            "whose forward takes one tensor and whose Python control flow does not depend on tensor values"
        ) from e


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode; afterwards each submodule gets back its own training flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example: torch.Tensor,
    *,
    opset: int | None = None,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> OnnxExport:
    """Export ``model`` (eval mode; its training flag is restored) to one ONNX file at ``path``.

    The input is named "input", the output "output", and the batch axis ("batch") is dynamic.
    With ``check``, the file is run in onnxruntime on ``example`` and compared with PyTorch; if it
    differs beyond ``atol * scale + rtol * |torch|`` (``scale``: the largest ``|torch|`` output, at
    least 1, so outputs in the thousands, prices, are held to the same relative precision as
    logits), ExportMismatch is raised and nothing is written. The
    file is written atomically (a temporary file in the same folder, then renamed).
    """
    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    if opset is not None:
        check_int("opset", opset, low=7)
    check_number("atol", atol, low=0.0)
    check_number("rtol", rtol, low=0.0)
    diff: list[float | None] = [None]

    def write(tmp: str) -> None:
        with eval_mode(model):
            program = export_program(model, example)
            onnx_file = tmp + ".onnx"  # the exporter names side files after the file it writes
            try:
                try:
                    with quiet():
                        torch.onnx.export(
                            program, (trace_example(example),), onnx_file, input_names=[INPUT_NAME],
                            output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True, external_data=False,
                            verbose=False,
                        )
                except Exception as e:  # an operator without ONNX translation, an unsupported opset, ...
                    first = next((line for line in str(e).splitlines() if line.strip()), "")
                    raise ConfigError(
                        f"invalid model: torch.export traced it but the ONNX exporter could not convert it "
                        f"({type(e).__name__}: {first}); allowed: a model of operators ONNX opset "
                        f"{opset or 'default'} supports"
                    ) from e
                _inline_and_name_batch(onnx_file)
                os.replace(onnx_file, tmp)
            finally:
                for leftover in (onnx_file, onnx_file + ".data"):
                    if os.path.exists(leftover):
                        os.unlink(leftover)
            if check:
                what = f"export to {os.fspath(path)} (nothing was written)"
                diff[0] = _compare(tmp, model, example, atol=atol, rtol=rtol, what=what)

    out = atomic_save_file(path, write)
    return OnnxExport(path=out, max_abs_diff=diff[0], size_bytes=out.stat().st_size)


def _inline_and_name_batch(path: str) -> None:
    """Move any external weights into the file and call the traced batch dimension "batch"."""
    import onnx

    model = onnx.load(path, load_external_data=True)
    inputs = [i for i in model.graph.input if i.name == INPUT_NAME]
    old = inputs[0].type.tensor_type.shape.dim[0].dim_param if inputs else ""
    if old and old != "batch":
        for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param == old:
                    dim.dim_param = "batch"
    onnx.save_model(model, path, save_as_external_data=False)


def check_onnx(
    path: str | os.PathLike[str], model: nn.Module, x: torch.Tensor, *, atol: float = 1e-4, rtol: float = 1e-3
) -> float:
    """Max |onnx(x) - model(x)|; raises ExportMismatch when outside ``atol * scale + rtol * |model(x)|``
    (``scale``: the largest |model(x)|, at least 1).

    ``model`` runs in eval mode (its training flag is restored).
    """
    return _compare(path, model, x, atol=atol, rtol=rtol, what=f"ONNX file {os.fspath(path)}")


def _compare(path: str | os.PathLike[str], model: nn.Module, x: torch.Tensor, *, atol: float, rtol: float,
             what: str) -> float:
    with eval_mode(model), torch.no_grad():
        expected = model(x)
    got = OnnxModel(path)(x)
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in (got, expected)]
        raise ExportMismatch(f"invalid {what}: got an output of shape {shapes[0]} where the model gives "
                             f"{shapes[1]}; allowed: the model's output, one tensor")
    expected = expected.float()
    diff = (got - expected).abs().max().item() if got.numel() else 0.0
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    if not torch.allclose(got, expected, atol=atol * scale, rtol=rtol, equal_nan=True):
        raise ExportMismatch(f"invalid {what}: got outputs that differ from the model's by up to {diff:.3g} "
                             f"(output scale {scale:.3g}); allowed: |onnx - torch| <= {atol:g} * scale + "
                             f"{rtol:g} * |torch| (scale: the largest |output|, at least 1)")
    return diff


class OnnxModel:
    """An ONNX file run by onnxruntime on CPU, called like the model: ``model(x) -> tensor``.

    Args:
        path: the .onnx file (one input, float32).
        threads: intra-op threads of the session (inter-op: 1; graph optimizations: all).

    ``num_parameters`` counts the elements of the graph's initializers that hold weights, biases or
    batch-norm statistics, in whatever type they are stored (int8 for a quantized model): every
    initializer except int64 ones (shapes, axes) and quantization parameters (the scale and
    zero-point inputs of QuantizeLinear/DequantizeLinear/MatMulInteger/ConvInteger/QLinear*, and
    onnxruntime's ``*_scale``/``*_zero_point`` tensors). The exporter may fold a batch norm into
    the convolution before it, so the count can be below the PyTorch model's.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1) -> None:
        ort = require("onnxruntime", "running an ONNX model")
        check_int("threads", threads, low=1)
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"invalid path: got {os.fspath(path)!r}, which is not a file; allowed: an .onnx file")
        ort.set_default_logger_severity(3)  # errors only
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        data = self.path.read_bytes()  # read once: the bytes checked are the bytes run
        check_self_contained(data, where=os.fspath(self.path))
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's Fail/InvalidGraph/InvalidProtobuf, ...
            raise ConfigError(f"invalid ONNX file {os.fspath(self.path)!r}: ONNX Runtime cannot load it "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: torch.Tensor | np.ndarray) -> Any:
        array = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
        outputs = [torch.from_numpy(np.ascontiguousarray(o)) for o in
                   self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(array)})]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def eval(self) -> OnnxModel:
        """No-op, so code written for nn.Module (``model.eval()``) works."""
        return self

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @cached_property
    def num_parameters(self) -> int:
        return count_initializers(self.path)

    def __repr__(self) -> str:
        return f"OnnxModel({os.fspath(self.path)!r}, size_bytes={self.size_bytes})"


_QPARAM_INPUTS = {  # op type -> input positions that hold scales or zero points
    "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "MatMulInteger": (2, 3), "ConvInteger": (2, 3),
    "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7),
}


def check_self_contained(data: bytes, *, where: str = "<bytes>") -> None:
    """Raise ConfigError unless ``data`` parses as an ONNX model whose every tensor is stored inside it.

    A tensor with external data names a file by path, which could point anywhere on the disk
    (``../../secret``); ``to_onnx`` writes self-contained files, so any external reference is refused.
    """
    onnx = require("onnx", "reading an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:
        raise ConfigError(f"invalid ONNX file {where!r}: not an ONNX model ({type(err).__name__})") from None

    def tensors(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from tensors(attr.g)
                for sub in attr.graphs:
                    yield from tensors(sub)

    for tensor in tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise ConfigError(f"invalid ONNX file {where!r}: the tensor {tensor.name!r} refers to external data; "
                              "allowed: a self-contained file (as to_onnx writes)")


def count_initializers(path: str | os.PathLike[str]) -> int:
    """Elements of the weight initializers of an ONNX file (see OnnxModel.num_parameters)."""
    onnx = require("onnx", "reading an ONNX model")
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    qparams = {node.input[i] for node in graph.node for i in _QPARAM_INPUTS.get(node.op_type, ())
               if i < len(node.input)}
    total = 0
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.INT64 or init.name in qparams:
            continue
        if init.name.endswith(("_scale", "_zero_point")):
            continue
        total += int(np.prod(init.dims, dtype=np.int64)) if init.dims else 1
    return total


def cpu_features() -> dict[str, Any]:
    """The CPU this process runs on, as far as int8 kernels care: its model name and whether it has
    AVX2, AVX-512 and VNNI (read from /proc/cpuinfo; empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    model = next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.partition(":")[2].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {"model": model, "avx2": "avx2" in flags, "avx512": "avx512f" in flags,
            "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})}


def int8_settings(mode: str, *, per_channel: bool = True, reduce_range: bool = True) -> dict[str, Any]:
    """What :func:`quantize_onnx` chooses, and why, as a model folder records it."""
    return {
        "mode": mode, "weights": "int8" + (", per output channel" if per_channel and mode == "static" else ""),
        "activations": "uint8" + (" (calibrated ranges)" if mode == "static" else " (ranges per batch)"),
        "reduce_range": reduce_range,
        "why": ("7-bit weight grid: correct on every x86 CPU (without VNNI, ONNX Runtime's u8s8 kernels "
                "saturate 8-bit weights)") if reduce_range else "8-bit weight grid: for CPUs with VNNI only",
        "quantized_on": cpu_features(),
    }


def quantize_onnx(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    mode: str = "static",
    calibration: Iterable[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray | None = None,
    per_channel: bool = True,
    reduce_range: bool = True,
) -> Path:
    """Write an int8 copy of the ONNX model ``src`` to ``dst`` (atomically); returns ``dst``.

    mode "dynamic": int8 weights (QInt8), activations quantized per batch at run time.
    mode "static": ``quant_pre_process`` (shape inference, graph optimization), then QDQ format
    with int8 weights (per output channel when ``per_channel``) and uint8 activations whose ranges
    (min/max) come from running the ``calibration`` batches (a single tensor is one batch), e.g.
    a few hundred training rows. Temporary files go to a temporary folder.

    ``reduce_range`` (default True) stores weights on a 7-bit grid. ONNX Runtime's int8 kernels on
    x86 CPUs without VNNI (AVX2 only, e.g. AMD EPYC before Zen 4) add pairs of uint8 x int8 products
    in int16, which saturates with 8-bit weights: measured on an AMD EPYC, an MLP's largest output
    error was 29% of the largest output instead of under 10%. A file may be run on another machine
    than the one that quantized it, so the portable grid is the default; ``False`` keeps 8 bits
    for files that will only run on VNNI CPUs.
    """
    check_choice("mode", mode, QUANTIZE_MODES)
    if isinstance(calibration, (torch.Tensor, np.ndarray)):  # one batch, not an iterable of rows
        calibration = [calibration]
    batches: Iterator[torch.Tensor | np.ndarray] = iter(calibration if calibration is not None else ())
    if mode == "static":
        first = next(batches, None)
        if first is None:
            raise ConfigError(f"invalid calibration: got {'None' if calibration is None else 'no batch'} for "
                              "mode='static'; allowed: batches of model inputs (an iterable of tensors or arrays), "
                              "or mode='dynamic'")
        batches = itertools.chain([first], batches)
    src = Path(src)
    if not src.is_file():
        raise ConfigError(f"invalid src: got {os.fspath(src)!r}, which is not a file; allowed: an .onnx file")
    require("onnx", "ONNX quantization")
    ort = require("onnxruntime", "ONNX quantization")
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory(prefix="honing-quantize-") as folder:
        out = os.path.join(folder, "int8.onnx")
        if mode == "dynamic":
            with quiet():
                ort_quantize_dynamic(os.fspath(src), out, weight_type=QuantType.QInt8, per_channel=per_channel,
                                     reduce_range=reduce_range)
        else:
            pre = os.path.join(folder, "pre.onnx")
            with quiet():
                quant_pre_process(os.fspath(src), pre)
            reader = _calibration_reader(_input_name(src), batches)
            with quiet():
                ort_quantize_static(
                    pre, out, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, reduce_range=reduce_range,
                )
        return atomic_save_file(dst, lambda tmp: shutil.copyfile(out, tmp))


def _input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def _calibration_reader(input_name: str, batches: Iterable[torch.Tensor | np.ndarray]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds the calibration batches, as float32 arrays, to onnxruntime's calibrator."""

        def __init__(self) -> None:
            self.iterator = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.iterator, None)
            if batch is None:
                return None
            if isinstance(batch, torch.Tensor):
                batch = batch.detach().cpu().float().numpy()
            return {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    return Reader()
