"""``bnnmlir train``: dataset readers on files written here, the recipe, determinism, checkpoint
and resume, sharded steps equal to a two-process torchrun (DDP, gloo), compiled evaluation."""

import gzip
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnmlir.models import fashion_mnist_net
from bnnmlir.tools.cli import main as cli_main
from bnnmlir.train.compiled import compiled_evaluation
from bnnmlir.train.config import TrainConfig
from bnnmlir.train.datasets import DatasetError, load_dataset, read_idx
from bnnmlir.train.loop import MODEL, load_run, train
from bnnmlir.train.recipe import calibrate_stream_scale, scale_batchnorms_

# ---- synthetic datasets ----------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def fake_fashion_mnist(root: Path, n_train: int = 256, n_test: int = 64, compress: bool = True,
                       seed: int = 0) -> Path:
    """Images whose class is readable: a bright square at a class-dependent place."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 5)
            images[i, 4 + 10 * r:12 + 10 * r, 2 + 5 * c:6 + 5 * c] = 250
        suffix = ".gz" if compress else ""
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return root


@pytest.fixture(scope="module")
def fm_root(tmp_path_factory) -> Path:
    return fake_fashion_mnist(tmp_path_factory.mktemp("fashion"))


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reader_gzip_or_not(tmp_path, compress):
    root = fake_fashion_mnist(tmp_path, 20, 10, compress=compress)
    train_set = load_dataset("fashion-mnist", "train", root)
    test_set = load_dataset("fashion-mnist", "test", root)
    assert train_set.images.shape == (20, 1, 28, 28) and train_set.images.dtype == torch.uint8
    assert len(test_set) == 10 and test_set.labels.dtype == torch.int64
    raw = read_idx(root / ("train-images-idx3-ubyte" + (".gz" if compress else "")))
    assert np.array_equal(train_set.images[:, 0].numpy(), raw)


def test_fashion_mnist_missing_names_the_place_and_the_package(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)no train-images-idx3-ubyte.*"
                       + str(tmp_path) + ".*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", tmp_path)
    with pytest.raises(DatasetError, match="is not a directory"):
        load_dataset("fashion-mnist", "test", tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["magic", "truncated", "labels", "shape", "gzip"])
def test_fashion_mnist_malformed(tmp_path, damage):
    root = fake_fashion_mnist(tmp_path, 20, 10, compress=False)
    images = root / "train-images-idx3-ubyte"
    raw = images.read_bytes()
    if damage == "magic":
        images.write_bytes(b"\x01\x02" + raw[2:])
        expected = "bad magic number"
    elif damage == "truncated":
        images.write_bytes(raw[:-5])
        expected = "the file holds"
    elif damage == "labels":
        write_idx(root / "train-labels-idx1-ubyte", np.zeros(19), False)
        expected = "expected 20 labels"
    elif damage == "shape":
        write_idx(images, np.zeros((20, 28, 27)), False)
        expected = "N x 28 x 28"
    else:
        images.write_bytes(b"\x1f\x8b" + b"garbage")
        expected = "broken gzip"
    with pytest.raises(DatasetError, match=expected):
        load_dataset("fashion-mnist", "train", root)


def write_cifar_batches(root: Path, per_batch: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f, protocol=2)
        all_data.append(data)
        all_labels.append(labels)
    return np.concatenate(all_data[:5]), np.concatenate(all_labels[:5])


def test_cifar10_python_batches(tmp_path):
    data, labels = write_cifar_batches(tmp_path)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        train_set = load_dataset("cifar10", "train", root)
        assert train_set.images.shape == (30, 3, 32, 32)
        assert np.array_equal(train_set.images.reshape(30, -1).numpy(), data)
        assert np.array_equal(train_set.labels.numpy(), labels)
        assert len(load_dataset("cifar10", "test", root)) == 6


class Boom:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar10_refuses_foreign_pickles_and_missing_batches(tmp_path):
    write_cifar_batches(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Boom(), b"labels": []}, f)
    with pytest.raises(DatasetError, match="refusing to load posix.getcwd"):
        load_dataset("cifar10", "test", tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match=r"data_batch_3 missing in .*cifar-10-batches-py"):
        load_dataset("cifar10", "train", tmp_path)


def write_image_tree(root: Path, size=(32, 32)) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("cat", "airplane"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


def test_cifar10_image_folders(tmp_path):
    from PIL import Image

    write_image_tree(tmp_path)
    train_set = load_dataset("cifar10", "train", tmp_path)
    assert train_set.classes == ("airplane", "cat")
    assert train_set.images.shape == (6, 3, 32, 32)
    assert train_set.labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(tmp_path / "train" / "airplane" / "0.png"))
    assert np.array_equal(train_set.images[0].permute(1, 2, 0).numpy(), first)


def test_cifar10_errors_say_where_they_looked(tmp_path):
    with pytest.raises(DatasetError, match="no data folder given.*cifar-10-batches-py"):
        load_dataset("cifar10", "train", None)
    with pytest.raises(DatasetError, match=f"{tmp_path} holds neither"):
        load_dataset("cifar10", "train", tmp_path)
    write_image_tree(tmp_path / "big", size=(40, 32))
    with pytest.raises(DatasetError, match="is 32x40, expected a 32x32 image"):
        load_dataset("cifar10", "test", tmp_path / "big")
    (tmp_path / "bad" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "bad" / "train" / "cat" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode .*x.jpg"):
        load_dataset("cifar10", "train", tmp_path / "bad")


def test_cli_reports_a_missing_dataset(tmp_path, capsys):
    code = cli_main(["train", "--dataset", "fashion-mnist", "--data", str(tmp_path / "none"),
                     "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{tmp_path / 'none'} is not a directory" in err and "dataset-fashion-mnist" in err


# ---- training --------------------------------------------------------------------------------


def tiny(**changes) -> TrainConfig:
    base = dict(dataset="fashion-mnist", stage="bnn", width=4, epochs=2, batch_size=32,
                train_limit=128, test_limit=64, lr=5e-3)
    base.update(changes)
    return TrainConfig(**base)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / MODEL, weights_only=True)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def epochs_without_time(log: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in log["epochs"]]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, fm_root) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reference")
    return out, train(tiny(), out, data_root=fm_root, progress=False, threads=1)


def test_training_learns_and_writes_its_logs(reference_run):
    out, log = reference_run
    assert [row["epoch"] for row in log["epochs"]] == [1, 2]
    assert log["epochs"][-1]["train_loss"] < log["epochs"][0]["train_loss"]
    assert log["results"]["test_accuracy"] > 0.2  # 10 classes: chance is 0.1
    stored = json.loads((out / "log.json").read_text())
    assert stored["config"]["stage"] == "bnn" and len(stored["epochs"]) == 2
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,step,train_loss")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    model, config = load_run(out)
    assert config == tiny() and not model.training


def test_training_is_deterministic_and_depends_on_the_seed(reference_run, fm_root, tmp_path):
    out, log = reference_run
    train(tiny(), tmp_path / "again", data_root=fm_root, progress=False, threads=1)
    assert_same_weights(out, tmp_path / "again")
    train(tiny(seed=1), tmp_path / "other", data_root=fm_root, progress=False, threads=1)
    assert not torch.equal(weights(out)["2.conv.weight"], weights(tmp_path / "other")["2.conv.weight"])


def test_resume_continues_exactly(reference_run, fm_root, tmp_path):
    out, log = reference_run
    run = tmp_path / "split"
    # 4 steps per epoch: stop in the middle of epoch 1, then after its end, then finish
    partial = train(tiny(), run, data_root=fm_root, progress=False, threads=1, stop_after=2)
    assert partial["epochs"] == [] and not (run / MODEL).exists()
    train(tiny(), run, data_root=fm_root, progress=False, threads=1, resume=True, stop_after=3)
    resumed = train(tiny(), run, data_root=fm_root, progress=False, threads=1, resume=True)
    assert_same_weights(out, run)
    assert epochs_without_time(resumed) == epochs_without_time(log)
    with pytest.raises(ValueError, match="another configuration"):
        train(tiny(lr=1e-3), run, data_root=fm_root, progress=False, resume=True)


def test_shards_change_the_batchnorm_statistics_not_the_batch(reference_run, fm_root, tmp_path):
    train(tiny(shards=2), tmp_path / "sharded", data_root=fm_root, progress=False, threads=1)
    sharded = weights(tmp_path / "sharded")
    assert not torch.equal(sharded["2.conv.weight"], weights(reference_run[0])["2.conv.weight"])
    with pytest.raises(ValueError, match="multiple of the number of shards"):
        tiny(shards=3)


def test_torchrun_two_processes_equal_one_process_with_two_shards(fm_root, tmp_path):
    """The README's claim: ``torchrun --nproc_per_node 2`` gives the weights of ``--shards 2``."""
    common = ["train", "--dataset", "fashion-mnist", "--data", str(fm_root), "--width", "4",
              "--epochs", "1", "--batch-size", "32", "--train-limit", "128", "--test-limit",
              "32", "--lr", "5e-3", "--threads", "1", "--quiet", "--no-compiled-eval"]
    assert cli_main(common + ["--shards", "2", "--out", str(tmp_path / "single")]) == 0
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "bnnmlir.tools.cli", *common,
         "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(tmp_path / "single", tmp_path / "ddp")
    single = json.loads((tmp_path / "single" / "log.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "log.json").read_text())
    assert ddp["config"]["shards"] == 2
    assert epochs_without_time(ddp) == epochs_without_time(single)


def test_stage_two_calibrates_then_fine_tunes_with_clip8(reference_run, fm_root, tmp_path):
    out, _ = reference_run
    log = train(tiny(stage="bnn-clip", init=str(out), epochs=1, lr=1e-4), tmp_path / "clip",
                data_root=fm_root, progress=False, threads=1)
    factor = log["results"]["stream_scale"]
    assert factor > 1
    clip = weights(tmp_path / "clip")
    stage1 = weights(out)
    gamma_ratio = clip["0.2.weight"].abs().mean() / stage1["0.2.weight"].abs().mean()
    assert 0.5 * factor < gamma_ratio < 2 * factor
    assert log["results"]["test_accuracy"] > 0.2


def test_the_stream_scale_leaves_the_float_flow_network_unchanged(reference_run, fm_root):
    model, _ = load_run(reference_run[0])
    x = load_dataset("fashion-mnist", "test", fm_root).images[:64].float() / 255
    before = model(x)
    factor = calibrate_stream_scale(model, x, 0.999)
    stream = {}
    hook = model[6].register_forward_hook(lambda m, i, o: stream.setdefault("x", o.detach()))
    scale_batchnorms_(model, factor)
    assert torch.equal(model(x), before)
    hook.remove()
    assert 20 < float(torch.quantile(stream["x"].abs().flatten(), 0.999)) <= 127 * 1.001


def test_distillation_from_a_trained_teacher(reference_run, fm_root, tmp_path):
    out, _ = reference_run
    base = train(tiny(epochs=1), tmp_path / "plain", data_root=fm_root, progress=False, threads=1)
    log = train(tiny(epochs=1, distill=str(out)), tmp_path / "kd", data_root=fm_root,
                progress=False, threads=1)
    assert log["epochs"][0]["train_loss"] != base["epochs"][0]["train_loss"]
    assert not torch.equal(weights(tmp_path / "kd")["2.conv.weight"],
                           weights(tmp_path / "plain")["2.conv.weight"])


def test_compiled_evaluation_agrees_with_pytorch(reference_run, fm_root, tmp_path):
    out, _ = reference_run
    run = tmp_path / "clip"
    train(tiny(stage="bnn-clip", init=str(out), epochs=1, lr=1e-4, test_limit=40), run,
          data_root=fm_root, progress=False, threads=1)
    results = compiled_evaluation(run, data_root=fm_root, batch=16)  # 40 = 16 + 16 + 8 padded
    assert results["agreement"] == 1.0 and results["identical_logits"] == 1.0
    assert results["compiled_accuracy"] == pytest.approx(results["pytorch_accuracy"])
    assert results["weight_bytes"] > 0 and results["compiled_latency_ms"] > 0
    assert json.loads((run / "log.json").read_text())["results"]["agreement"] == 1.0


def test_models_of_one_topology_share_their_parameters():
    bnn, clip = fashion_mnist_net("bnn", width=4), fashion_mnist_net("bnn-clip", width=4)
    assert bnn.state_dict().keys() == clip.state_dict().keys()
    for key, value in bnn.state_dict().items():
        assert torch.equal(value, clip.state_dict()[key])
