import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from r1omni.metrics import classification_report, confusion_matrix, mean_over_folds, per_class_recall, uar, war

LABELS = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


@pytest.mark.parametrize("seed", range(20))
def test_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    present = rng.choice(LABELS, size=int(rng.integers(2, 8)), replace=False)
    y_true = list(rng.choice(present, n))
    y_pred = [p if rng.random() > 0.1 else None for p in rng.choice(LABELS, n)]
    as_str = ["<none>" if p is None else p for p in y_pred]
    assert war(y_true, y_pred) == pytest.approx(accuracy_score(y_true, as_str))
    # balanced_accuracy averages recall over the classes present in y_true, as UAR does here.
    assert uar(y_true, y_pred, LABELS) == pytest.approx(balanced_accuracy_score(y_true, as_str))
    ours = np.array(confusion_matrix(y_true, y_pred, LABELS))
    theirs = sk_confusion(y_true, as_str, labels=LABELS + ["<none>"])[: len(LABELS)]
    np.testing.assert_array_equal(ours, theirs)


def test_unparseable_is_wrong_and_counted():
    report = classification_report(["happy", "sad", "sad"], [None, "sad", "banana"], LABELS)
    assert report.war == pytest.approx(1 / 3)
    assert report.uar == pytest.approx(0.25)
    assert report.unparseable == 2
    assert report.per_class_recall["fear"] is None
    assert report.confusion[0][-1] == 1 and report.confusion[1][-1] == 1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="2 entries"):
        war(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="not in the label list"):
        per_class_recall(["zzz"], ["zzz"], LABELS)
    with pytest.raises(ValueError, match="None"):
        war([None], ["a"])


def test_fold_mean():
    folds = [classification_report(["happy", "sad"], ["happy", "happy"], LABELS),
             classification_report(["happy", "sad"], ["happy", "sad"], LABELS)]
    mean = mean_over_folds(folds)
    assert mean["war"] == pytest.approx(0.75) and mean["uar"] == pytest.approx(0.75) and mean["folds"] == 2
