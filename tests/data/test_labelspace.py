"""Shared label space: a source's class names mapped onto another source's head."""

from __future__ import annotations

import pytest

from unidual.data.errors import DataError
from unidual.data.labelspace import Relabelled, class_key, map_classes

KINETICS = ["abseiling", "playing guitar", "Playing Drums", "riding-a-bike"]


def test_names_match_ignoring_case_and_separators():
    assert class_key("Playing_Guitar") == class_key("playing guitar") == class_key(" playing--guitar ")
    assert class_key("playing guitar") != class_key("playingguitar")
    m = map_classes(["Playing_Guitar", "riding a bike", "playing.drums"], KINETICS, source="web", head="kinetics")
    assert m.index == (1, 3, 2) and m.dropped == ()
    assert [m(i) for i in range(3)] == [1, 3, 2]


def test_unmatched_classes_listed_in_one_error_line():
    with pytest.raises(DataError) as err:
        map_classes(["playing guitar", "Juggling", "surfing_crowd"], KINETICS, source="web", head="kinetics")
    text = str(err.value)
    assert "\n" not in text and "'Juggling', 'surfing_crowd'" in text and "2 of its 3 classes" in text
    assert "head_unmatched: drop" in text


def test_drop_leaves_unmatched_classes_out_and_counts_them():
    m = map_classes(["Juggling", "playing guitar"], KINETICS, source="web", head="kinetics", unmatched="drop")
    assert m.index == (-1, 1) and m.dropped == ("Juggling",)

    class Source:
        def __init__(self):
            self.labels = [0, 1, 1, 0, 1]
            self.files = [f"f{i}.jpg" for i in range(5)]
            self.classes = ["Juggling", "playing guitar"]
            self.spec = "the source spec"

        def __getitem__(self, i):
            return {"input": i, "label": self.labels[i], "source": "web", "index": i}

    view = Relabelled(Source(), m)
    assert len(view) == 3 and view.dropped_examples == 2
    assert view.labels == [1, 1, 1] and view.files == ["f1.jpg", "f2.jpg", "f4.jpg"] and view.classes == KINETICS
    assert view[2] == {"input": 4, "label": 1, "source": "web", "index": 2}
    assert view.spec == "the source spec"  # other attributes come from the source


def test_nothing_to_train_and_ambiguous_heads_are_errors():
    with pytest.raises(DataError, match="none of its classes"):
        map_classes(["Juggling"], KINETICS, source="web", head="kinetics", unmatched="drop")
    with pytest.raises(DataError, match="differ only in case"):
        map_classes(["a"], ["Playing Guitar", "playing_guitar"], source="web", head="kinetics")
    with pytest.raises(DataError, match="head_unmatched"):
        map_classes(["a"], ["a"], source="web", head="kinetics", unmatched="ignore")
