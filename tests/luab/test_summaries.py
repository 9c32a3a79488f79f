"""Page summaries, on hand-made pages (a 100x100 COCO-style image; ImageNet-style (selected, in class) pairs)."""
from luab.summaries import coco_page_summary, icons_on_their_objects, imagenet_page_summary, objects_by_category

CAR_MASK = [[10, 10, 60, 10, 10, 60]]  # the upper-left half of its box [10, 10, 50, 50]
OBJECTS = [
    ("car", [10, 10, 50, 50], CAR_MASK),
    ("dog", [70, 70, 20, 20], None),  # no mask: the box counts
    ("dog", [0, 80, 10, 10], None),
]


def test_an_icon_is_on_an_object_of_its_own_category():
    final_positions = {
        "car": {"x": 0.2, "y": 0.2},  # on the car's mask
        "dog": {"x": 0.05, "y": 0.85},  # on the second dog's box
        "cat": {"x": 0.2, "y": 0.2},  # on the car, but no cat is there
    }
    assert icons_on_their_objects(final_positions, objects_by_category(OBJECTS), 100, 100) == {
        "car": True, "dog": True, "cat": False,
    }
    # In the car's box but off its mask.
    assert icons_on_their_objects({"car": {"x": 0.55, "y": 0.55}}, objects_by_category(OBJECTS), 100, 100) == {
        "car": False,
    }


def test_page_summary_counts_categories_correct_tags_icons_and_icons_on_their_mask():
    final_positions = {"car": {"x": 0.55, "y": 0.55}, "dog": {"x": 0.8, "y": 0.8}, "cat": {"x": 0.5, "y": 0.5}}
    assert coco_page_summary(OBJECTS, 100, 100, final_positions) == {
        "n_gt_categories": 2, "n_tagged_correct": 2, "n_icons": 3, "n_icons_on_mask": 1,
    }
    assert coco_page_summary([], 100, 100, {}) == {
        "n_gt_categories": 0, "n_tagged_correct": 0, "n_icons": 0, "n_icons_on_mask": 0,
    }



def test_imagenet_page_summary_counts_selected_in_class_and_both():
    images = [(True, True), (True, False), (False, True), (False, False), (True, True)]
    assert imagenet_page_summary(images) == {"n_selected": 3, "n_in_class": 3, "n_in_class_selected": 2}


def test_an_empty_page_counts_nothing():
    assert imagenet_page_summary([]) == {"n_selected": 0, "n_in_class": 0, "n_in_class_selected": 0}
