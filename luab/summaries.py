"""Page summaries for review and the report, from a page's records."""

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
