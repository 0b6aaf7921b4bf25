"""The minimum metadata parser version of a LiteRT metadata buffer, for MediaPipe's wheel that lacks its own.

`mediapipe.tasks.python.metadata.metadata` (the `MetadataPopulator` and
`MetadataDisplayer`) imports `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`
at load time, and the mediapipe 1.2.3 wheel on PyPI does not ship that extension:
the import fails with "No module named 'mediapipe.tasks.cc'". `provide()` registers
this module's `GetMinimumMetadataParserVersion` under that name when, and only
when, the real one is missing. The rules are those of MediaPipe's
`mediapipe/tasks/cc/metadata/metadata_version.cc`: 1.0.0, raised to the version
that introduced each schema member the buffer uses.
"""

from __future__ import annotations

import sys
import types

EXTENSION = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
BASE_VERSION = (1, 0, 0)


def _member_versions(schema) -> list[tuple[type, str, object, tuple[int, int, int]]]:
    """(object type, attribute, value or `PRESENT`, version): metadata_version.cc's `GetMemberVersion` table."""
    file_type, options = schema.AssociatedFileType, schema.ProcessUnitOptions
    return [
        (schema.AssociatedFileT, "type", file_type.VOCABULARY, (1, 0, 1)),
        (schema.SubGraphMetadataT, "inputProcessUnits", PRESENT, (1, 1, 0)),
        (schema.SubGraphMetadataT, "outputProcessUnits", PRESENT, (1, 1, 0)),
        (schema.ProcessUnitT, "optionsType", options.BertTokenizerOptions, (1, 1, 0)),
        (schema.ProcessUnitT, "optionsType", options.SentencePieceTokenizerOptions, (1, 1, 0)),
        (schema.SubGraphMetadataT, "inputTensorGroups", PRESENT, (1, 2, 0)),
        (schema.SubGraphMetadataT, "outputTensorGroups", PRESENT, (1, 2, 0)),
        (schema.ProcessUnitT, "optionsType", options.RegexTokenizerOptions, (1, 2, 1)),
        (schema.ContentT, "contentPropertiesType", schema.ContentProperties.AudioProperties, (1, 3, 0)),
        (schema.AssociatedFileT, "type", file_type.SCANN_INDEX_FILE, (1, 4, 0)),
        (schema.AssociatedFileT, "version", PRESENT, (1, 4, 1)),
        (schema.SubGraphMetadataT, "customMetadata", PRESENT, (1, 5, 0)),
    ]


PRESENT = object()  # the member counts when it is set at all (not None, not empty)


def minimum_parser_version(buffer: bytes) -> str:
    """The lowest metadata parser version that reads every member `buffer` (a ModelMetadata flatbuffer) uses."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    root = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAsModelMetadata(bytes(buffer), 0))
    rules = _member_versions(schema)
    version = BASE_VERSION
    for table in _tables(root):
        for kind, attribute, value, introduced in rules:
            if isinstance(table, kind):
                found = getattr(table, attribute, None)
                if (found not in (None, [], "") if value is PRESENT else found == value):
                    version = max(version, introduced)
    return ".".join(map(str, version))


def _tables(table):
    """`table` and every flatbuffer table object below it, depth first."""
    yield table
    for value in vars(table).values():
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "__dict__") and type(item).__module__ == type(table).__module__:
                yield from _tables(item)


def provide() -> None:
    """Register `GetMinimumMetadataParserVersion` as MediaPipe's missing extension, unless the wheel has it."""
    if EXTENSION in sys.modules:
        return
    try:
        __import__(EXTENSION)
    except ImportError:
        module = types.ModuleType(EXTENSION, __doc__)
        module.GetMinimumMetadataParserVersion = minimum_parser_version
        package, _, name = EXTENSION.rpartition(".")
        parent = sys.modules.setdefault(package, types.ModuleType(package))  # `from package import name` finds it
        setattr(parent, name, module)
        sys.modules[EXTENSION] = module
