"""Page summaries from a page's records."""
from luab.summaries import imagenet_page_summary


def test_imagenet_page_summary_counts_selected_in_class_and_both():
    images = [(True, True), (True, False), (False, True), (False, False), (True, True)]
    assert imagenet_page_summary(images) == {"n_selected": 3, "n_in_class": 3, "n_in_class_selected": 2}


def test_an_empty_page_counts_nothing():
    assert imagenet_page_summary([]) == {"n_selected": 0, "n_in_class": 0, "n_in_class_selected": 0}
