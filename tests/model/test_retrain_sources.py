"""A retrain reads its new data its own way: a champion trained on a bundled table retrains from a CSV."""

from sklearn.datasets import load_wine

from pipelines.config import RetrainConfig
from pipelines.retrain import retrain
from pipelines.train import train
from tests.conftest import fast_config

def test_a_champion_of_bundled_wine_retrains_from_a_csv_with_its_own_target(tmp_path):
    train(fast_config(dataset="wine", runs_root=tmp_path / "runs", registry=tmp_path / "registry",
                      quantize=["float32"]))
    bunch = load_wine(as_frame=True)
    csv = bunch.data.assign(cultivar=[bunch.target_names[i] for i in bunch.target]).sample(frac=1, random_state=1)
    csv.to_csv(tmp_path / "wine.csv", sep=";", index=False)
    result = retrain(RetrainConfig(name="wine", data=tmp_path / "wine.csv", target="cultivar", mode="finetune",
                                   registry=tmp_path / "registry", runs_root=tmp_path / "runs", finetune_epochs=2))
    assert result.mode == "finetune" and result.version is not None
    assert sum(result.split_sizes.values()) == 178, "every row of the semicolon CSV"
