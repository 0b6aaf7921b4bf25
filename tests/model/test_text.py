"""Text: a text column (alone or beside numbers) and a folder of .txt files train end to end, the int8 model scores
raw strings as Keras does, an app's tokenizer written from model_spec.json alone gives the same ids, and the TF-IDF
layer computes scikit-learn's TF-IDF."""

import json
import re

import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import kerasflow
from flows.cli import app
from models.hypermodel import KerasflowHyperModel
from models.inference import model_outputs
from models.text import TEXT_FAMILIES, informative_tokens
from pipelines.columns import infer_roles
from pipelines.config import ExportOptions
from pipelines.errors import DataError, ExportError
from pipelines.export.calibration import Calibration
from pipelines.export.run import reexport
from pipelines.export.records import ExportData
from pipelines.export.tflite import LiteModel, check_builtin_ops, convert, write_saved_model
from pipelines.load import Dataset, load_path, split_dataset
from pipelines.preprocess import encode_features, fit_preprocessing, model_inputs
from pipelines.text.tokenizer import Tokenizer
from pipelines.train import train
from tests.conftest import TEXT_WORDS, fast_config, make_texts


def _splits(frame, target="team", length=None):
    features = frame.drop(columns=[target])
    data = Dataset("table", features, frame[target].to_numpy(object), "memory").with_roles(infer_roles(features))
    return split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """Tickets with a text body and a numeric priority, trained on tiny budgets (linear and embedding trials)."""
    root = tmp_path_factory.mktemp("text")
    make_texts(120).to_csv(root / "tickets.csv", index=False)
    result = train(fast_config(data=root / "tickets.csv", target="team", runs_root=root / "runs",
                               registry=root / "registry", name="tickets", max_trials=2))
    return root, result


def _spec_tokenizer(spec: dict):
    """An app's tokenizer, written from model_spec.json alone (no kerasflow code): the documented rule."""
    text = spec["input"]["text"]
    index = {word: i for i, word in enumerate(text["vocabulary"])}
    split = re.compile(text["split_pattern"])

    def ids(value: str) -> list[int]:
        value = value.lower() if text["lowercase"] else value
        words = [w for w in split.split(value.strip()) if w]
        found = [text["start_id"], *(index.get(w, text["unknown_id"]) for w in words)][:text["length"]]
        return found + [text["pad_id"]] * (text["length"] - len(found))

    return ids


def test_a_text_table_trains_exports_int8_and_scores_raw_strings(mixed_run):
    root, result = mixed_run
    run_dir = result.run_dir
    spec = json.loads((run_dir / "export" / "model_spec.json").read_text())
    assert spec["input"]["text"]["columns"] == ["body"] and spec["input"]["text"]["vocabulary"][:3] == \
        ["<PAD>", "<START>", "<UNKNOWN>"]
    assert result.evaluation.accuracy >= 0.8, "the words tell the team"
    model = kerasflow.load("tickets", registry=root / "registry")
    new = make_texts(30, seed=5).drop(columns=["team"])
    keras_run, int8_run = model.predict(new), model.predict(new, variant="int8")
    assert np.mean(keras_run.labels == int8_run.labels) >= 0.9, "int8 labels raw strings as Keras does"
    truth = make_texts(30, seed=5)["team"].to_numpy()
    assert np.mean(keras_run.labels == truth) >= 0.8
    assert {c.column: c.kind for c in keras_run.drift.columns}["body.tokens"] == "numeric", "token counts drift as numbers"
    assert "body.unknown" in {c.column for c in keras_run.drift.columns}


def test_an_apps_tokenizer_from_model_spec_alone_gives_the_models_ids(mixed_run):
    root, result = mixed_run
    spec = json.loads((result.run_dir / "export" / "model_spec.json").read_text())
    model = kerasflow.load(result.run_dir)
    samples = ["Router OFFLINE since monday; it's the DNS!!", "", "   invoice, refund\tcard  ", "zzz unseen words",
               " ".join(["please"] * 80), "Ünïcode wifi café"]
    frame = make_texts(len(samples)).drop(columns=["team"]).assign(body=samples)
    dataset = Dataset("table", frame, np.full(len(samples), "", dtype=object), "apps")
    x = encode_features(dataset, model.trained.prep)
    start = spec["input"]["text"]["first_index"]
    length = spec["input"]["text"]["length"]
    ids = _spec_tokenizer(spec)
    assert x[:, start:start + length].astype(int).tolist() == [ids(s) for s in samples]
    assert ids("zzz")[:2] == [1, 2] and ids("")[0] == 1 and set(ids("")[1:]) == {0}


def test_the_tfidf_layer_is_scikit_learns_tfidf_and_logistic_regression():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from pipelines.text.tokenizer import tokens

    frame = make_texts(90)[["body", "team"]]
    splits = _splits(frame)
    prep = fit_preprocessing(splits)
    prep.tokenizer["length"] = 32  # no text is cut: scikit-learn sees every token
    prep.input_shape = [32]
    inputs = model_inputs(splits, prep)
    hypermodel = KerasflowHyperModel(prep, ["linear"])
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, inputs.x_train, inputs.y_train)
    vectorizer = TfidfVectorizer(analyzer=tokens, lowercase=False).fit(splits.train.features["body"])
    regression = LogisticRegression(C=1.0, max_iter=1000).fit(vectorizer.transform(splits.train.features["body"]),
                                                               inputs.y_train)
    # on the training rows every word is in the vocabulary (scikit-learn drops unknown words; kerasflow counts
    # <UNKNOWN> as one more token, so rows with unknown words differ by design)
    expected = regression.predict_proba(vectorizer.transform(splits.train.features["body"]))
    assert np.allclose(model_outputs(model, inputs.x_train), expected, atol=2e-3)
    top = informative_tokens(model, prep.tokenizer["vocabulary"], prep.class_names, top=3)
    for team, words in TEXT_WORDS.items():
        assert set(top[team]) <= set(words), f"{team}'s most informative tokens are its own words"


def test_word_pairs_and_sublinear_counts_are_scikit_learns_and_export_with_builtin_ops(tmp_path):
    """`tfidf_bigrams` and `tfidf_sublinear` compute TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True): on
    the training rows (every pair seen, no hash collision among a few hundred pairs) the probabilities are
    scikit-learn's, and the float TFLite model (hashing in int32 ops) gives them too."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from pipelines.text.tokenizer import tokens

    frame = make_texts(90)[["body", "team"]]
    splits = _splits(frame)
    prep = fit_preprocessing(splits)
    prep.tokenizer["length"] = 32  # no text is cut
    prep.input_shape = [32]
    inputs = model_inputs(splits, prep)
    hp = kt.HyperParameters()
    hp.values.update({"family": "linear", "linear_c": 10.0, "tfidf_bigrams": True, "tfidf_sublinear": True})
    hypermodel = KerasflowHyperModel(prep, ["linear"])
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, inputs.x_train, inputs.y_train)

    def words_and_pairs(text):
        found = tokens(text)
        return found + [f"{a} {b}" for a, b in zip(found, found[1:])]

    texts = splits.train.features["body"]
    vectorizer = TfidfVectorizer(analyzer=words_and_pairs, lowercase=False, sublinear_tf=True).fit(texts)
    assert any(" " in term for term in vectorizer.vocabulary_), "the texts have word pairs"
    regression = LogisticRegression(C=10.0, max_iter=1000).fit(vectorizer.transform(texts), inputs.y_train)
    expected = regression.predict_proba(vectorizer.transform(texts))
    assert np.allclose(model_outputs(model, inputs.x_train), expected, atol=2e-3)
    saved = write_saved_model(model, tmp_path / "saved_model", prep.input_shape)
    tflite = convert(saved, "float32")
    check_builtin_ops(tflite, "linear")
    assert np.allclose(LiteModel(tflite).predict(inputs.x_train), expected, atol=2e-3)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_every_text_family_converts_to_int8_with_builtin_ops(family):
    frame = make_texts(60)
    prep = fit_preprocessing(_splits(frame))  # body (text) and priority (numeric): both inputs
    x = model_inputs(_splits(frame), prep).x_train
    hp = kt.HyperParameters()
    hp.values["family"] = family
    model = KerasflowHyperModel(prep, [family]).build(hp)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        saved = write_saved_model(model, Path(folder) / "saved_model", prep.input_shape)
        tflite = convert(saved, "int8", Calibration(x[:20]))
    check_builtin_ops(tflite, family)
    assert len(tflite) > 0


def _text_folder(root, n=45, seed=0, encoding="utf-8"):
    frame = make_texts(n, seed)
    for i, (body, team) in enumerate(zip(frame["body"], frame["team"])):
        (root / team).mkdir(parents=True, exist_ok=True)
        (root / team / f"{i}.txt").write_bytes(body.encode(encoding))
    return root


def test_a_folder_of_texts_trains_and_scores_its_files(tmp_path):
    folder = _text_folder(tmp_path / "texts")
    data = load_path(folder, None)
    assert data.roles["text"].role == "text" and sorted(set(data.labels)) == sorted(TEXT_WORDS)
    result = train(fast_config(data=folder, runs_root=tmp_path / "runs", registry=tmp_path / "registry",
                               name="texts", families=["linear"]))
    spec = json.loads((result.run_dir / "export" / "model_spec.json").read_text())
    length = spec["input"]["text"]["length"]
    assert spec["input"]["shape"] == [-1, length], "a text-only model takes its token ids alone"
    assert spec["input"]["dtype"] == "int32" and spec["input"]["text"]["fed_as"].startswith("int32")
    assert {v["input"]["dtype"] for v in spec["variants"].values()} == {"int32"}, "as MediaPipe Tasks feeds ids"
    report = (result.run_dir / "report.md").read_text()
    assert "Most informative tokens per class" in report and "| network | " in report
    new = _text_folder(tmp_path / "new", n=9, seed=3)
    model = kerasflow.load(result.run_dir)
    scored = model.predict(new, variant="int8").to_frame()
    assert list(scored.columns[:2]) == ["file", "label"] and len(scored) == 9
    assert (scored["label"] == [f.split("/")[0] for f in scored["file"]]).mean() >= 0.8
    strings = model.predict(["the router is offline again", "refund my invoice please"])
    assert list(strings.labels) == ["network", "billing"]
    # The judge nobody here wrote: MediaPipe Tasks' TextClassifier feeds raw strings itself, from the metadata.
    texts = ["The Router is OFFLINE again", "refund my invoice, please!", "my password is locked", "zzz", ""]
    for variant in ("float32", "int8"):
        ours = model.predict(texts, variant=variant)
        theirs = mediapipe_text_scores(result.run_dir / "export" / f"model_{variant}.tflite", texts)
        assert [max(t, key=t.get) for t in theirs] == list(ours.labels), variant
        scores = np.array([[t[name] for name in ours.class_names] for t in theirs])
        assert np.abs(scores - ours.probabilities).max() < 1e-4, variant
    with pytest.raises(ExportError, match="--int8-io does not apply to a text model"):
        reexport(result.run_dir, ExportOptions(quantize=["int8"], int8_io=True))
    assert json.loads((result.run_dir / "export" / "model_spec.json").read_text()) == spec, "the export is kept"


def mediapipe_text_scores(tflite_path, texts) -> list[dict[str, float]]:
    """MediaPipe Tasks' TextClassifier on each raw string: label -> score."""
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(tflite_path)), max_results=-1)
    with text.TextClassifier.create_from_options(options) as classifier:
        return [{c.category_name: c.score for c in classifier.classify(value).classifications[0].categories}
                for value in texts]


def test_an_app_feeds_int32_ids_from_model_spec_to_the_int8_file(tmp_path):
    """MediaPipe's way: the app tokenizes with the spec's rule and sets int32 ids on a bare LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    folder = _text_folder(tmp_path / "texts")
    result = train(fast_config(data=folder, runs_root=tmp_path / "runs", name="texts", families=["cnn"],
                               quantize=["int8"]))
    export = result.run_dir / "export"
    spec = json.loads((export / "model_spec.json").read_text())
    ids = _spec_tokenizer(spec)
    texts = ["the router is offline again", "refund my invoice please", "my password is locked"]
    interpreter = Interpreter(model_path=str(export / "model_int8.tflite"))
    interpreter.allocate_tensors()
    feed, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert feed["dtype"] == np.int32 and list(feed["shape"]) == [1, spec["input"]["text"]["length"]]
    app_labels = []
    for text in texts:
        interpreter.set_tensor(feed["index"], np.asarray([ids(text)], dtype=np.int32))
        interpreter.invoke()
        app_labels.append(spec["labels"][int(np.argmax(interpreter.get_tensor(out["index"])))])
    assert app_labels == list(kerasflow.load(result.run_dir).predict(texts, variant="int8").labels)


def test_int8_io_is_refused_for_text_when_the_data_is_read(tmp_path):
    from pipelines.config import TrainConfig
    from pipelines.load import load_dataset

    folder = _text_folder(tmp_path / "texts", n=12)
    with pytest.raises(DataError, match="^--int8-io does not apply to a text model"):
        load_dataset(TrainConfig(data=folder, int8_io=True))
    assert load_dataset(TrainConfig(data=folder))[0].roles["text"].role == "text"


def test_a_text_table_keeps_a_float_input_and_says_so(mixed_run):
    spec = json.loads((mixed_run[1].run_dir / "export" / "model_spec.json").read_text())
    assert spec["input"]["dtype"] == "float32" and spec["input"]["text"]["fed_as"].startswith("float32")
    assert {v["input"]["dtype"] for v in spec["variants"].values()} == {"float32"}


def test_a_file_not_in_utf8_is_one_error_line_naming_it(tmp_path):
    folder = _text_folder(tmp_path / "texts", n=12)
    (folder / "billing" / "latin.txt").write_bytes("café refund".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt: not UTF-8 text"):
        load_path(folder, None)
    result = CliRunner().invoke(app, ["train", "--data", str(folder), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "latin.txt: not UTF-8 text" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_table_whose_only_column_is_an_identifier_is_refused_at_once(tmp_path):
    frame = make_texts(40).assign(ticket=[f"T{i:04d}" for i in range(40)])[["ticket", "team"]]
    frame.to_csv(tmp_path / "ids.csv", index=False)
    from pipelines.load import load_dataset
    from pipelines.config import TrainConfig

    with pytest.raises(DataError, match="no feature column is left"):
        load_dataset(TrainConfig(data=tmp_path / "ids.csv", target="team"))


def test_the_tokenizer_rule_and_vocabulary(tmp_path):
    tokenizer = Tokenizer.fit(["b a a", "c b a", "It's A test"])
    assert tokenizer.vocabulary[:6] == ["<PAD>", "<START>", "<UNKNOWN>", "a", "b", "c"]
    assert "It's" in tokenizer.vocabulary, "apostrophes stay inside words (Model Maker's [^\\w']+), case kept"
    assert tokenizer.encode(["a, b! zebra"])[0, :4].tolist() == [1, 3, 4, 2]
    assert tokenizer.encode(["B"])[0, 1] == 2, "case kept, as MediaPipe's regex tokenizer keeps it"
    assert Tokenizer.from_json(json.loads(json.dumps(tokenizer.to_json()))) == tokenizer
    saved_before = {k: v for k, v in tokenizer.to_json().items() if k not in ("lowercase", "rule")}
    old = Tokenizer.from_json(saved_before)
    assert old.lowercase and old.rule.startswith("lowercase;") and old.encode(["B"])[0, 1] == 4, "older runs lower-case"


def test_a_finetune_retrain_on_new_text_keeps_the_champions_vocabulary(mixed_run, tmp_path):
    from pipelines.config import RetrainConfig
    from pipelines.retrain import retrain

    root, first = mixed_run
    champion = json.loads((first.run_dir / "preprocessing.json").read_text())["tokenizer"]
    new = make_texts(60, seed=9)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert Tokenizer.fit(new["body"]).vocabulary != champion["vocabulary"], "a new vocabulary would differ"
    result = retrain(RetrainConfig(name="tickets", registry=root / "registry", data=tmp_path / "new.csv",
                                   mode="finetune", runs_root=tmp_path / "runs", finetune_epochs=2))
    assert result.mode == "finetune"
    assert json.loads((result.run_dir / "preprocessing.json").read_text())["tokenizer"] == champion
    assert {"body.tokens", "body.unknown"} <= {c.column for c in result.drift.columns}, "both text drifts reported"


def test_each_text_family_names_its_own_hyperparameters():
    """keras-tuner keeps one value per name: a name shared by two families' conditional scopes loses its value
    (`ensure_active_values` pops it for the inactive one), and a hyperband trial fails or reloads the wrong width."""
    prep = fit_preprocessing(_splits(make_texts(60)[["body", "team"]]))
    hypermodel, hp = KerasflowHyperModel(prep, list(TEXT_FAMILIES)), kt.HyperParameters()
    for family in TEXT_FAMILIES:
        hp.values["family"] = family
        hypermodel.build(hp)
    conditional = [h.name for h in hp.space if h.conditions]
    assert len(conditional) == len(set(conditional)), conditional
    hp.values.update({"family": "cnn", "cnn_embedding_dim": 64})
    hp.ensure_active_values()
    assert hp.values["cnn_embedding_dim"] == 64


def test_a_text_tables_int8_file_reads_its_token_ids_in_float_whatever_the_vocabulary(tmp_path):
    """The int8 file keeps every op on the raw input in float, the table columns' slice too: with that slice
    quantized, the whole input was (openintro's birds, 8,659 words: ids near the top gathered out of bounds and the
    export stopped; the others read neighbouring words)."""
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(3000)])
    team = np.where(np.arange(200) % 2, "a", "b")
    body = [" ".join(rng.choice(words, 12)) + (" alpha" if t == "a" else " beta") for t in team]
    frame = pd.DataFrame({"body": body, "priority": rng.integers(1, 5, 200), "team": team})
    prep = fit_preprocessing(_splits(frame))
    x = model_inputs(_splits(frame), prep).x_train
    y = model_inputs(_splits(frame), prep).y_train
    assert len(prep.tokenizer["vocabulary"]) > 1000
    hp = kt.HyperParameters()
    hp.values["family"] = "linear"
    hypermodel = KerasflowHyperModel(prep, ["linear"])
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y)
    saved = write_saved_model(model, tmp_path / "saved_model", prep.input_shape)
    float32 = LiteModel(convert(saved, "float32")).predict(x)
    int8 = LiteModel(convert(saved, "int8", Calibration(x[:50]))).predict(x)
    assert np.mean(float32.argmax(axis=1) == int8.argmax(axis=1)) >= 0.95
    assert np.abs(float32 - int8).max() < 0.1
