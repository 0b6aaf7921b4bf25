"""Text inputs: the tokenizer rule and vocabulary, folders of .txt files, and the profile of text columns.

    tokenizer.py   the written-down rule (MediaPipe Model Maker's regex tokenizer) and the vocabulary
    folder.py      one subfolder of .txt files per class, read as a one-column table
    profile.py     text columns as token counts and unknown-token shares, for checks and drift
"""
