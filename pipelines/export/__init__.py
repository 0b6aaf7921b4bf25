"""Export step: the trained Keras model as .keras, SavedModel and TFLite variants, each checked against Keras.

    records.py        ExportData, ExportResult, VariantReport, KerasReference: what an export keeps and reports
    tflite.py         conversion to TFLite (float32, float16, dynamic, int8), builtin-op checks, LiteModel
    compress.py       pruning and distillation into a size budget
    model_card.py     the model card and the variant table
    variant_plot.py   the size-vs-agreement picture of the variants
    run.py            export_model, reexport: the export of a run folder in order
    reexport.py       re-export of a past run or registered version with new options

Nothing is imported here, so `pipelines.config` can read `tflite.VARIANTS` without loading the export stage.
"""
