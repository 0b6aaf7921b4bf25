"""LiteRT metadata inside every exported .tflite: what MediaPipe Tasks and Android Studio's ML Model Binding read.

The `TFLITE_METADATA` flatbuffer (`metadata_schema.fbs`) says what the file is
(name, description, version, author and licence, from the model card), what its
input is (an RGB image and the normalisation a client applies to 0–255 pixels;
a table row or a sequence, with its training value range; tokenized text and the
tokenizer that makes it) and what its output is (softmax probabilities, with the
label file as `TENSOR_AXIS_LABELS`). Associated files (labels, a vocabulary) are
zipped onto the end of the file, as the schema's documentation describes. The
interpreter ignores all of it: the ops and tensors are untouched.

Built with MediaPipe's own writers rather than hand-made flatbuffers:
`mediapipe.tasks.python.metadata.metadata_writers.metadata_info` (`GeneralMd`,
`InputImageTensorMd`, `InputTextTensorMd`/`RegexTokenizerMd`, `TensorMd`,
`ClassificationTensorMd`, `LabelFileMd`) describe the parts, and
`mediapipe.tasks.python.metadata.metadata.MetadataPopulator` packs them and the
files in (what `metadata_writer.MetadataWriter.populate` does, without its temporary
files); `MetadataDisplayer` reads them back. mediapipe is imported only when a file
is written or read, not when the CLI starts, and through `pipelines.export.mediapipe_import`
(which keeps it from holding the importer's frames). The 1.2.3 wheel lacks the extension those
two import; `pipelines.export.metadata_version` stands in for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from pipelines.export.model_card import (
    DEFAULT_LICENCE,
    NORMALISATION,
    STATE_RESET,
    UNNAMED,
    CardFacts,
    input_layout,
)
from pipelines.export.mediapipe_import import load as load_mediapipe
from pipelines.export.metadata_version import provide as provide_parser_version
from pipelines.export.records import ExportData
from pipelines.export.rgb import RGB_CHANNELS, file_input_shape, has_front
from pipelines.preprocess import Preprocessing
from pipelines.text.tokenizer import Tokenizer

AUTHOR = "kerasflow"
LABEL_FILE = "labels.txt"
VOCABULARY_FILE = "vocab.txt"
INPUT_NAME = "features"  # the tensor's own name too (`pipelines.export.tflite.write_saved_model`)
IMAGE_INPUT_NAME = "image"
OUTPUT_NAME = "probability"
OUTPUT_DESCRIPTION = f"Softmax probabilities, one per label, in the order of {LABEL_FILE}."
PIXEL_MAX = 255.0  # what a client's 8-bit pixels reach
UNIT_RANGE = 1.0  # training images at or below this were scaled to [0, 1]: a client divides its pixels by PIXEL_MAX

# Text: the tokenizer is kerasflow's one rule (`pipelines.text.tokenizer`), Model Maker's average-word-embedding
# convention, which MediaPipe's TextClassifier applies from the metadata: words split on SPLIT_PATTERN, looked up in
# the vocabulary file (lines "token id"), fed as [1, length] int32 ids after <START>, padded with <PAD>.


@dataclass
class About:
    """The general part of the metadata: what the file is, as its model card says."""

    name: str
    description: str
    version: str
    licence: str
    author: str = AUTHOR

    @classmethod
    def of(cls, prep: Preprocessing, facts: CardFacts | None, variant: str, source: str) -> "About":
        what = f"{facts.family} classifier" if facts else "Classifier"
        trained = f" trained on {facts.source}" if facts else ""
        return cls(
            name=facts.model_name if facts else UNNAMED,
            description=(f"{what} of {prep.kind}s{trained}, {len(prep.class_names)} classes; TFLite variant "
                         f"{variant} ({source}). {OUTPUT_DESCRIPTION} Everything the metadata cannot say (table "
                         "vocabularies, the sequence length rule): model_spec.json; scores and limits: MODEL_CARD.md."),
            version=f"{facts.trained_at} {variant}" if facts else variant,
            licence=facts.licence if facts else DEFAULT_LICENCE,
        )


def pixel_normalisation(data: ExportData) -> tuple[float, float]:
    """(mean, std) a client applies to 0–255 pixels, (p - mean) / std, to give the model its training units.

    Image files load as 0–255 pixels, and the model standardises them itself: (0, 1). Training images stored in
    [0, 1]: (0, 255).
    """
    return (0.0, PIXEL_MAX) if float(np.nanmax(data.feature_max)) <= UNIT_RANGE else (0.0, 1.0)


def with_metadata(tflite: bytes, prep: Preprocessing, data: ExportData, about: About, stateful: bool = False) -> bytes:
    """`tflite` with the metadata of an image, table or sequence classifier and its label file packed in."""
    load_mediapipe()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, writer_utils

    input_type = writer_utils.get_input_tensor_types(tflite)[0]
    if prep.token_ids_only:
        return with_text_metadata(tflite, prep.class_names, prep.text_tokenizer, about)
    if prep.kind == "image":
        mean, std = pixel_normalisation(data)
        height, width, _ = file_input_shape(prep)
        gray = (" It is converted to gray inside the model (luma 0.299 R + 0.587 G + 0.114 B, as PIL reads gray "
                "files), since the model was trained on gray images.") if has_front(prep) else ""
        input_md = metadata_info.InputImageTensorMd(
            name=IMAGE_INPUT_NAME, description=(
                f"RGB image, {height}x{width} pixels (resize others), fed as (pixel - {mean:g}) / {std:g} from 0-255 "
                f"pixels.{gray} Inside the model: {NORMALISATION['image']}."),
            norm_mean=[mean] * RGB_CHANNELS, norm_std=[std] * RGB_CHANNELS,
            color_space_type=_color_space_rgb(), tensor_type=input_type)
    else:
        reset = f" Before each call: {STATE_RESET}." if stateful else ""
        input_md = metadata_info.TensorMd(
            name=INPUT_NAME, description=f"{input_layout(prep)}. Inside the model: {NORMALISATION[prep.kind]}.{reset}",
            min_values=_finite(data.feature_min), max_values=_finite(data.feature_max))
    return _populate(tflite, about, input_md, prep.class_names)


def with_text_metadata(tflite: bytes, class_names: list[str], tokenizer: Tokenizer, about: About) -> bytes:
    """`tflite` (input `[1, length]` int32 token ids) with a regex tokenizer, its vocabulary and labels packed in:
    what MediaPipe's TextClassifier needs to feed raw strings itself."""
    load_mediapipe()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info

    input_md = metadata_info.InputTextTensorMd(
        name=INPUT_NAME, description=(f"Token ids of one text ({tokenizer.length} of them): {tokenizer.rule}. "
                                      f"The vocabulary is {VOCABULARY_FILE}."),
        tokenizer_md=metadata_info.RegexTokenizerMd(tokenizer.split_pattern, VOCABULARY_FILE))
    return _populate(tflite, about, input_md, class_names, {VOCABULARY_FILE: vocabulary_file(tokenizer.vocabulary)})


def vocabulary_file(vocabulary: list[str]) -> bytes:
    """The vocabulary as a regex tokenizer reads it: one "token id" line each, the special tokens first."""
    return "".join(f"{token} {i}\n" for i, token in enumerate(vocabulary)).encode()


def _populate(tflite: bytes, about: About, input_md, class_names: list[str],
              files: dict[str, bytes] | None = None) -> bytes:
    import flatbuffers

    provide_parser_version()
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, writer_utils

    output_md = metadata_info.ClassificationTensorMd(
        name=OUTPUT_NAME, description=OUTPUT_DESCRIPTION, label_files=[metadata_info.LabelFileMd(LABEL_FILE)],
        tensor_type=writer_utils.get_output_tensor_types(tflite)[0])
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [input_md.create_metadata()]
    subgraph.outputTensorMetadata = [output_md.create_metadata()]
    model = metadata_info.GeneralMd(name=about.name, version=about.version, description=about.description,
                                    author=about.author, licenses=about.licence).create_metadata()
    model.subgraphMetadata = [subgraph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    populator = metadata.MetadataPopulator.with_model_buffer(tflite)
    populator.load_metadata_buffer(builder.Output())
    populator.load_associated_file_buffers({LABEL_FILE: "\n".join(class_names).encode(), **(files or {})})
    populator.populate()
    return with_fixed_zip_times(bytes(populator.get_model_buffer()))


# The populator zips the associated files with the time of writing; a fixed time keeps an export reproducible
# (a re-export writes the same bytes). DOS date and time of 1980-01-01 00:00, zip's epoch.
ZIP_EPOCH = (0x0021).to_bytes(2, "little"), (0).to_bytes(2, "little")
LOCAL_HEADER_TIME, CENTRAL_HEADER_TIME, CENTRAL_HEADER_SIZE = 10, 12, 46
CENTRAL_LENGTHS = (28, 30, 32)  # where a central header gives its name, extra field and comment lengths


def with_fixed_zip_times(tflite: bytes) -> bytes:
    """`tflite` with every packed file's modification time set to `ZIP_EPOCH` (local and central headers)."""
    import io
    import zipfile

    date, time = ZIP_EPOCH
    out = bytearray(tflite)
    with zipfile.ZipFile(io.BytesIO(tflite)) as packed:
        entries = packed.infolist()
        central = packed.start_dir  # absolute offsets: zipfile adds the model bytes before the zip
    for entry in entries:
        at = entry.header_offset + LOCAL_HEADER_TIME
        out[at:at + 4] = time + date
        at = central + CENTRAL_HEADER_TIME
        out[at:at + 4] = time + date
        lengths = sum(int.from_bytes(out[central + i:central + i + 2], "little") for i in CENTRAL_LENGTHS)
        central += CENTRAL_HEADER_SIZE + lengths
    return bytes(out)


def _color_space_rgb() -> int:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    return schema.ColorSpaceType.RGB


def _finite(values: np.ndarray) -> list[float] | None:
    """Per-column values for the metadata's stats; None when a column has none (all missing in training)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return values.tolist() if np.all(np.isfinite(values)) else None


def read_metadata(tflite: bytes) -> dict:
    """The file's metadata as MediaPipe's `MetadataDisplayer` reads it (JSON), with the packed file names."""
    load_mediapipe()
    provide_parser_version()
    from mediapipe.tasks.python.metadata import metadata

    displayer = metadata.MetadataDisplayer.with_model_buffer(tflite)
    return {**json.loads(displayer.get_metadata_json()), "packed_files": displayer.get_packed_associated_file_list()}


def packed_file(tflite: bytes, name: str) -> bytes:
    """One associated file zipped onto `tflite` (the labels, a vocabulary)."""
    load_mediapipe()
    provide_parser_version()
    from mediapipe.tasks.python.metadata import metadata

    return metadata.MetadataDisplayer.with_model_buffer(tflite).get_associated_file_buffer(name)
