"""Page summaries: what a saved page says at a glance, kept with the page (PageSubmission) and read by review and
the report."""
from luab.geometry import in_pixels, point_on_object

IMAGENET_SUMMARY = ("n_selected", "n_in_class", "n_in_class_selected")


def imagenet_page_summary(images):
    """An ImageNet-style page's summary from its images' (selected, in the page's class) pairs: how many are
    selected, in class, and both."""
    summary = dict.fromkeys(IMAGENET_SUMMARY, 0)
    for selected, in_class in images:
        summary["n_selected"] += selected
        summary["n_in_class"] += in_class
        summary["n_in_class_selected"] += selected and in_class
    return summary


def objects_by_category(objects):
    """{category key: [(bbox, segmentation)]} of an image's (category key, bbox, segmentation) triples."""
    by_key = {}
    for key, bbox, segmentation in objects:
        by_key.setdefault(key, []).append((bbox, segmentation))
    return by_key


def icons_on_their_objects(final_positions, by_key, width, height):
    """{category key: whether its icon lies on an object of that category} of a COCO-style page's final icon
    positions ({category key: {x, y}} in 0-1 of the width x height image); by_key from objects_by_category."""
    return {
        key: any(point_on_object(*in_pixels(point, width, height), segmentation, bbox)
                 for bbox, segmentation in by_key.get(key, ()))
        for key, point in final_positions.items()
    }


def coco_page_summary(objects, width, height, final_positions):
    """A COCO-style page's review summary from the image's ground truth, objects being its (category key, bbox,
    segmentation) triples: ground-truth categories, correct tags, icons, icons on a mask of their own category.
    final_positions are {category key: {x, y}} in 0-1 of the image (width x height pixels)."""
    by_key = objects_by_category(objects)
    return {
        "n_gt_categories": len(by_key),
        "n_tagged_correct": len(by_key.keys() & final_positions.keys()),
        "n_icons": len(final_positions),
        "n_icons_on_mask": sum(icons_on_their_objects(final_positions, by_key, width, height).values()),
    }
