from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from annotator import packing
from annotator.models import Assignment, Batch, Hit, HitPage, ImageNetRecord, ImageScore, PageItem, Split, TaskKind
from tests import factories

pytestmark = pytest.mark.django_db


def make_imagenet_dataset(classes=3, per_class=100, val_per_class=0):
    dataset = factories.DatasetFactory(kind=TaskKind.IMAGENET)
    categories = [factories.CategoryFactory(dataset=dataset, index=i) for i in range(classes)]
    for category in categories:
        for split, count in ((Split.TRAIN, per_class), (Split.VAL, val_per_class)):
            for _ in range(count):
                factories.ImageFactory(dataset=dataset, label=category, split=split)
    return dataset, categories


def test_imagenet_pages_hold_48_candidates_three_quarters_from_their_class_and_cover_every_image():
    dataset, categories = make_imagenet_dataset(classes=3, per_class=100)
    batch = factories.BatchFactory(dataset=dataset)

    result = packing.build_hits(batch, seed=1)

    pages = list(HitPage.objects.filter(hit__batch=batch).prefetch_related("items__image"))
    # 100 images per class, 36 in-class slots per page: 3 pages per class.
    assert len(pages) == 9 and result.pages == 9
    assert Hit.objects.filter(batch=batch).count() == 1
    for page in pages:
        items = list(page.items.all())
        assert len(items) == 48
        in_class = [item for item in items if item.in_class]
        assert len(in_class) == 36
        assert all(item.image.label_id == page.category_id for item in in_class)
        assert all(item.image.label_id != page.category_id for item in items if not item.in_class)
        assert len({item.image_id for item in items}) == 48
        assert sorted(item.position for item in items) == list(range(48))
    covered = set(PageItem.objects.filter(page__hit__batch=batch, in_class=True).values_list("image_id", flat=True))
    train = set(dataset.images.filter(split=Split.TRAIN).values_list("id", flat=True))
    assert covered == train and result.images_covered == 300


def test_imagenet_hits_take_ten_pages_and_the_ratio_is_configurable():
    dataset, _ = make_imagenet_dataset(classes=4, per_class=130)
    batch = factories.BatchFactory(dataset=dataset, items_per_page=20, in_class_ratio=0.5, pages_per_hit=10)

    packing.build_hits(batch)

    # 10 in-class slots per page: 13 pages per class, 52 pages, 6 HITs (the last one of 2 pages).
    sizes = Counter(HitPage.objects.filter(hit__batch=batch).values_list("hit__index", flat=True))
    assert sorted(sizes.values()) == [2, 10, 10, 10, 10, 10]
    in_class = Counter(PageItem.objects.filter(page__hit__batch=batch).values_list("in_class", flat=True))
    assert in_class[True] == in_class[False] == 520


def test_no_hit_shows_a_class_twice_when_there_are_enough_hits():
    dataset, _ = make_imagenet_dataset(classes=12, per_class=30)
    batch = factories.BatchFactory(dataset=dataset, items_per_page=20, in_class_ratio=0.5, pages_per_hit=10)

    packing.build_hits(batch, seed=3)

    # 10 in-class slots per page: 3 pages per class, 36 pages in 4 HITs (the last of 6 pages).
    classes_by_hit = {}
    for hit_index, category_id in HitPage.objects.filter(hit__batch=batch).values_list("hit__index", "category_id"):
        classes_by_hit.setdefault(hit_index, []).append(category_id)
    assert sorted(len(classes) for classes in classes_by_hit.values()) == [6, 10, 10, 10]
    for classes in classes_by_hit.values():
        assert len(set(classes)) == len(classes)


def test_gold_items_come_from_labelled_val_images_and_count_in_the_page():
    dataset, _ = make_imagenet_dataset(classes=3, per_class=40, val_per_class=5)
    batch = factories.BatchFactory(dataset=dataset)

    packing.build_hits(batch, gold_per_page=4)

    for page in HitPage.objects.filter(hit__batch=batch):
        items = list(page.items.select_related("image"))
        gold = [item for item in items if item.is_gold]
        assert len(items) == 48 and len(gold) == 4
        assert all(item.image.split == Split.VAL for item in gold)
        assert all(item.in_class == (item.image.label_id == page.category_id) for item in gold)
        assert sum(item.in_class for item in items) == 36


def test_round_two_repacks_only_the_images_round_one_did_not_reselect():
    dataset, categories = make_imagenet_dataset(classes=2, per_class=36)
    first = factories.BatchFactory(dataset=dataset, name="round-1")
    packing.build_hits(first)
    hit = first.hits.get()
    approved = factories.AssignmentFactory(hit=hit, state=Assignment.State.APPROVED)
    rejected = factories.AssignmentFactory(hit=hit, state=Assignment.State.REJECTED)
    reselected, rejected_only = [], []
    for page in hit.pages.all():
        in_class = list(page.items.filter(in_class=True))
        for item in in_class[:30]:
            ImageNetRecord.objects.create(assignment=approved, page=page, image=item.image, selected=True,
                                          image_width=100, image_height=100)
            reselected.append(item.image_id)
        for item in in_class[30:]:
            ImageNetRecord.objects.create(assignment=rejected, page=page, image=item.image, selected=True,
                                          image_width=100, image_height=100)
            rejected_only.append(item.image_id)
    second = factories.BatchFactory(dataset=dataset, name="round-2", round=2, source_batch=first)

    packing.build_hits(second)

    repacked = set(PageItem.objects.filter(page__hit__batch=second, in_class=True).values_list("image_id", flat=True))
    assert repacked == set(rejected_only)
    assert len(repacked) == 12


def test_uncertainty_order_puts_the_most_uncertain_images_in_the_first_hit():
    dataset, _ = make_imagenet_dataset(classes=2, per_class=72)
    dataset.active_model_version = "v3"
    dataset.save()
    images = list(dataset.images.order_by("id"))
    for rank, image in enumerate(images):
        ImageScore.objects.create(image=image, model_version="v3", uncertainty=rank / len(images))
    batch = factories.BatchFactory(dataset=dataset, pages_per_hit=1)

    packing.build_hits(batch, order=packing.ORDER_UNCERTAINTY)

    first_page = HitPage.objects.get(hit__batch=batch, hit__index=0)
    in_first = set(first_page.items.filter(in_class=True).values_list("image_id", flat=True))
    assert images[-1].id in in_first
    assert in_first == {image.id for image in images[-36:]}


def test_uncertainty_order_without_an_active_model_is_refused_and_writes_nothing():
    dataset, _ = make_imagenet_dataset(classes=2, per_class=10)
    batch = factories.BatchFactory(dataset=dataset)

    with pytest.raises(ValidationError, match="no active model version"):
        packing.build_hits(batch, order=packing.ORDER_UNCERTAINTY)
    assert not Hit.objects.exists()


def test_coco_hits_take_twenty_images_each_covering_every_train_image():
    dataset = factories.DatasetFactory(kind=TaskKind.COCO)
    images = [factories.ImageFactory(dataset=dataset) for _ in range(45)]
    factories.ImageFactory(dataset=dataset, split=Split.VAL)

    call_command("build_hits", "--dataset", dataset.name, "--batch", "coco-1")

    batch = Batch.objects.get(name="coco-1")
    assert batch.pages_per_hit == 20 and str(batch.reward) == "2.00"
    sizes = sorted(Counter(HitPage.objects.filter(hit__batch=batch).values_list("hit_id", flat=True)).values())
    assert sizes == [5, 20, 20]
    shown = list(HitPage.objects.filter(hit__batch=batch).values_list("image_id", flat=True))
    assert sorted(shown) == sorted(image.id for image in images)


def test_build_hits_command_creates_the_batch_with_its_settings_and_is_idempotent(capsys):
    dataset, _ = make_imagenet_dataset(classes=2, per_class=36)
    args = ["--dataset", dataset.name, "--batch", "b1", "--reward", "1.20", "--variant", "red_dot",
            "--max-hits-per-worker", "5", "--assignment-duration", "1800"]

    call_command("build_hits", *args)
    call_command("build_hits", *args)

    batch = Batch.objects.get(name="b1")
    assert (str(batch.reward), batch.interface_variant, batch.max_hits_per_worker) == ("1.20", "red_dot", 5)
    assert batch.provider_config == {"assignment_duration": 1800}
    assert batch.hits.count() == 1
    assert "already has 1 HITs" in capsys.readouterr().out


def test_build_hits_command_names_the_bad_option():
    dataset, _ = make_imagenet_dataset(classes=2, per_class=5)
    with pytest.raises(CommandError, match="--from-batch: no batch named 'nope'"):
        call_command("build_hits", "--dataset", dataset.name, "--batch", "b2", "--round", "2", "--from-batch", "nope")
    with pytest.raises(CommandError, match="round 2 needs the batch it follows"):
        call_command("build_hits", "--dataset", dataset.name, "--batch", "b3", "--round", "2")
    with pytest.raises(CommandError, match="assignment_duration: 30 is not a whole number of seconds of at least 60"):
        call_command("build_hits", "--dataset", dataset.name, "--batch", "b4", "--assignment-duration", "30")
    assert not Batch.objects.exists()


def test_admin_action_builds_hits_for_a_dataset(admin_client):
    dataset, _ = make_imagenet_dataset(classes=2, per_class=36)

    response = admin_client.post(
        "/admin/annotator/dataset/", {"action": "build_hits_for_datasets", "_selected_action": [dataset.pk]},
        follow=True,
    )

    batch = Batch.objects.get(dataset=dataset)
    assert batch.hits.count() == 1 and HitPage.objects.filter(hit__batch=batch).count() == 2
    assert [str(m) for m in response.context["messages"]] == [f"{batch.name}: 1 HITs, 2 pages, 72 images covered"]
