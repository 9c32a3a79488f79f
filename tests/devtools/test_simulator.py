"""The crowd simulator works real HITs through the worker API of a live server, and review tells its workers apart."""
import random
import time

import pytest
from django.core.management import CommandError, call_command

from annotator.models import (
    Assignment,
    Batch,
    CocoRecord,
    EventBatch,
    ImageNetRecord,
    PageSubmission,
    Split,
    TaskKind,
)
from annotator.packing import build_hits
from annotator.providers import tasks
from devtools import simulator
from tests.annotator import worker_bodies as bodies
from tests.factories import (
    BatchFactory,
    CategoryFactory,
    DatasetFactory,
    GroundTruthObjectFactory,
    ImageFactory,
)


def imagenet_batch(classes=4, per_class=12):
    dataset = DatasetFactory(kind=TaskKind.IMAGENET)
    for c in range(classes):
        category = CategoryFactory(dataset=dataset, index=c)
        for _ in range(per_class):
            image = ImageFactory(dataset=dataset, label=category, split=Split.TRAIN)
            GroundTruthObjectFactory(image=image, category=category, bbox=[150, 90, 220, 180])
    batch = BatchFactory(dataset=dataset, pages_per_hit=2, items_per_page=8, in_class_ratio=0.75,
                         rule_thresholds={"min_selections": 3}, status=Batch.Status.PUBLISHED)
    build_hits(batch, seed=1)
    return batch


def coco_batch(images=16):
    dataset = DatasetFactory(kind=TaskKind.COCO)
    categories = [CategoryFactory(dataset=dataset, index=i, key=str(i + 1), supercategory=group)
                  for i, group in enumerate(["animal", "animal", "vehicle", "food"])]
    rng = random.Random(3)
    for _ in range(images):
        image = ImageFactory(dataset=dataset, split=Split.TRAIN, width=640, height=480)
        for category in rng.sample(categories, 2):
            # Left or right of the middle, never on it: a centre clicker misses every object.
            x, y = rng.choice([rng.randint(10, 90), rng.randint(330, 410)]), rng.randint(20, 280)
            GroundTruthObjectFactory(image=image, category=category, bbox=[x, y, 220, 180],
                                     segmentation=[[x, y, x + 220, y, x + 220, y + 180, x, y + 180]])
    batch = BatchFactory(dataset=dataset, pages_per_hit=4, status=Batch.Status.PUBLISHED)
    build_hits(batch, seed=1)
    return batch


def run(batch, live_server, mix, workers, concurrency=2):
    hits = simulator.hits_to_work(batch)
    transport = simulator.HttpTransport(live_server.url)
    return simulator.run_crowd(batch, hits, transport=transport, n_workers=workers, mix=simulator.parse_mix(mix),
                               seed=7, concurrency=concurrency)


def rates(crowd_run):
    decisions = simulator.decisions_by_profile(crowd_run)
    table = {}
    for profile, states in sorted(decisions.items()):
        total = sum(states.values())
        table[profile] = (states["approved"] / total, states["rejected"] / total, total)
        print(f"{profile:<9} approved {table[profile][0]:.0%} rejected {table[profile][1]:.0%} of {total}")
    return table


def test_mix_gives_exact_counts_per_profile():
    mix = simulator.parse_mix("diligent=0.7,sloppy=0.15,spammer=0.1,centre=0.05")
    names = simulator.assign_profiles(20, mix, random.Random(0))
    assert {name: names.count(name) for name in set(names)} == {"diligent": 14, "sloppy": 3, "spammer": 2, "centre": 1}
    with pytest.raises(ValueError, match="unknown worker profile 'lazy'"):
        simulator.parse_mix("lazy=1")
    with pytest.raises(ValueError, match="not a number"):
        simulator.parse_mix("diligent=most")


@pytest.mark.django_db(transaction=True)
def test_imagenet_crowd_leaves_records_and_review_separates_diligent_from_spammers(live_server):
    batch = imagenet_batch()
    n_hits = batch.hits.count()
    before_ms = int(time.time() * 1000)
    crowd = run(batch, live_server, "diligent=0.5,spammer=0.5", workers=4)

    assert [o.status for o in crowd.outcomes] == ["submitted"] * n_hits, [o.error for o in crowd.outcomes]
    diligent = [o for o in crowd.outcomes if o.profile == "diligent"]
    pages = sum(o.pages_saved for o in crowd.outcomes)
    assert PageSubmission.objects.filter(assignment__hit__batch=batch).count() == pages
    assert ImageNetRecord.objects.filter(assignment__hit__batch=batch).count() == pages * 8
    assert EventBatch.objects.filter(assignment__hit__batch=batch).exists()
    selected = ImageNetRecord.objects.filter(assignment__worker__external_id=diligent[0].worker, selected=True)
    first_click = selected.first().selected_record[0]
    assert before_ms <= first_click["time"] <= before_ms + 3600 * 1000, "epoch ms, near now"
    # Diligent clicks land on the object box (150..370 x 90..270 of 500 x 375) far more often than not.
    on_box = [r.selected_record[0] for r in selected if 0.3 <= r.selected_record[0]["x"] <= 0.74
              and 0.24 <= r.selected_record[0]["y"] <= 0.72]
    assert len(on_box) / selected.count() > 0.7

    table = rates(crowd)
    assert table["diligent"][0] == 1.0
    assert table["spammer"][1] == 1.0


@pytest.mark.django_db(transaction=True)
def test_coco_crowd_tags_objects_and_review_rejects_spammers_and_centre_clickers(live_server):
    batch = coco_batch()
    crowd = run(batch, live_server, "diligent=0.5,spammer=0.25,centre=0.25", workers=4, concurrency=1)

    assert all(o.status == "submitted" for o in crowd.outcomes), [o.error for o in crowd.outcomes]
    records = CocoRecord.objects.filter(assignment__hit__batch=batch)
    assert records.count() == sum(o.pages_saved for o in crowd.outcomes)
    diligent_records = records.filter(assignment__worker__external_id__contains="diligent")
    assert diligent_records.exists()
    tagged = present = 0
    for record in diligent_records:
        groups_browsed = {visit["categoryIndex"] for visit in record.category_histories}
        assert groups_browsed == {0, 1, 2}
        assert all(0 <= a["timeAt"] <= record.time_spent for a in record.action_histories)
        truth = set(record.image.ground_truth_objects.values_list("category__key", flat=True))
        tagged += len(truth & set(record.final_positions))
        present += len(truth)
    assert tagged / present > 0.6, "diligent workers tag most of what is on the images (0.9 each)"

    table = rates(crowd)
    assert table["diligent"][0] == 1.0
    assert table["spammer"][1] == 1.0
    assert table["centre"][1] == 1.0


@pytest.mark.django_db(transaction=True)
def test_command_in_process_fills_half_the_batch_once(capsys):
    batch = imagenet_batch(classes=2, per_class=24)
    total = batch.hits.count()
    call_command("simulate_crowd", batch.name, "--in-process", "--workers", "3", "--fill", "50%",
                 "--mix", "diligent=1", "-v", "0")
    out = capsys.readouterr().out
    assert "diligent" in out and "submitted" in out
    worked = Batch.objects.get(pk=batch.pk).hits.filter(assignments__isnull=False).distinct().count()
    assert worked == -(-total // 2)
    assert Assignment.objects.filter(hit__batch=batch, state=Assignment.State.APPROVED).count() == worked
    call_command("simulate_crowd", batch.name, "--in-process", "--fill", "0.5", "-v", "0")
    assert "no untaken HITs" in capsys.readouterr().out
    assert Assignment.objects.filter(hit__batch=batch).count() == worked


@pytest.mark.django_db
def test_ground_truth_is_keyed_by_the_ids_the_pages_show_and_a_draft_is_refused():
    """The simulated worker learns nothing from the page: it looks its candidates up by the server's own mapping."""
    batch = imagenet_batch(classes=2, per_class=6)
    hit = batch.hits.first()
    truth = simulator.load_ground_truth([hit])
    for page in hit.pages.all():
        ids = bodies.candidate_ids(page)
        items = page.items.order_by("position").select_related("image")
        assert [(truth[i].key, truth[i].in_class) for i in ids] == [(it.image.key, it.in_class) for it in items]
    assert not {image.key for image in truth.values()} & set(truth)
    batch.status = Batch.Status.DRAFT
    batch.save()
    with pytest.raises(CommandError, match=f"batch {batch.name} is a draft, which takes no workers: publish it"):
        call_command("simulate_crowd", batch.name, "--in-process", "-v", "0")


@pytest.mark.django_db(transaction=True)
def test_mturk_batches_are_opened_with_mturk_parameters(monkeypatch):
    sent = []
    # No market here: just see it is queued.
    monkeypatch.setattr(tasks.send_decision, "apply_async", lambda args=(), **options: sent.extend(args))
    batch = imagenet_batch(classes=2, per_class=6)
    batch.provider = "mturk"
    batch.save()
    hits = simulator.hits_to_work(batch, limit=1)
    crowd = simulator.run_crowd(batch, hits, transport=simulator.InProcessTransport(), n_workers=1,
                                mix={"diligent": 1.0}, seed=2, concurrency=1)
    assert crowd.outcomes[0].status == "submitted", crowd.outcomes[0].error
    assignment = Assignment.objects.get(hit=hits[0])
    assert assignment.worker.external_id.startswith("A2SIM")
    assert assignment.external_id.startswith("SIM")
    assert assignment.turk_submit_to == "https://workersandbox.mturk.com"
    assert sent == [assignment.pk]


class FlakyTransport(simulator.InProcessTransport):
    """The first page save times out after the server stored it, as on a flaky network."""

    def __init__(self):
        super().__init__()
        self.failed = []

    def request(self, method, path, token=None, payload=None):
        answer = super().request(method, path, token, payload)
        if path.endswith("/save") and not self.failed:
            self.failed.append(path)
            raise simulator.requests.Timeout("read timed out")
        return answer


@pytest.mark.django_db
def test_a_lost_answer_is_retried_with_the_same_save_and_stored_once():
    batch = imagenet_batch(classes=2, per_class=6)
    hit = simulator.hits_to_work(batch, limit=1)[0]
    transport = FlakyTransport()
    outcome = simulator.simulate_assignment(transport, batch, hit, simulator.load_ground_truth([hit]), "W-retry",
                                            simulator.PROFILES["diligent"], seed=4)
    assert transport.failed == ["/api/worker/pages/0/save"]
    assert outcome.status == "submitted", outcome.error
    assert PageSubmission.objects.filter(assignment__hit=hit).count() == outcome.pages_saved == hit.pages.count()
