import csv
import math

import pytest
import torch

from unidual.evaluate import metrics


def test_average_view_scores_is_mean_of_softmax_not_of_logits():
    logits = torch.tensor([[[10.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])  # one confident clip
    scores = metrics.average_view_scores(logits)
    expected = logits.softmax(-1).mean(1)
    assert torch.allclose(scores, expected)
    # averaging logits would pick class 0; averaged probabilities pick class 0 too here,
    # but the values differ: check the rule, not only the argmax
    assert not torch.allclose(scores, logits.mean(1).softmax(-1))
    assert torch.allclose(scores.sum(-1), torch.ones(1))


def test_topk_accuracy_and_cap_at_class_count():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    acc = metrics.topk_accuracy(scores, labels, ks=(1, 2, 5))
    assert acc[1] == pytest.approx(100 / 3)
    assert acc[2] == pytest.approx(200 / 3)
    assert acc[5] == pytest.approx(100.0)  # k capped at 3 classes


def test_confusion_and_per_class():
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    true = torch.tensor([0, 1, 0, 2, 2, 1])
    conf = metrics.confusion_matrix(pred, true, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    per = metrics.per_class_accuracy(conf)
    assert per[:3] == pytest.approx([50.0, 50.0, 100.0]) and math.isnan(per[3])
    assert metrics.mean_class_accuracy(conf) == pytest.approx(200 / 3)


def test_confusion_files(tmp_path):
    conf = torch.tensor([[3, 1], [0, 2]])
    csv_path = metrics.write_confusion_csv(conf, ["cat", "dog"], tmp_path / "c.csv")
    rows = list(csv.reader(csv_path.open()))
    assert rows == [["true \\ predicted", "cat", "dog"], ["cat", "3", "1"], ["dog", "0", "2"]]
    png = metrics.plot_confusion(conf, ["cat", "dog"], tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
