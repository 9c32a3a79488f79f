"""Nothing the worker's browser receives tells in-class candidates from the others (issue 14, point 1).

A bot answered ImageNet-style pages from the image ids alone (`<wnid>_<n>`, on a page naming the wnid) and was
approved without looking at one image. Here bots read everything a page sends (the task page HTML with its
bootstrap, the preview, `GET assignment`, `GET pages/<i>` with resume data, every image URL and its file name, the
images' pixel sizes and byte counts, the candidates' order) for a batch packed by the real packer from a dataset
imported by the real importer, and must do no better than chance at picking in-class candidates.

The images' pixels are drawn independently of their class here (random noise of random size), so anything a bot
gains can only come from what the pipeline adds: ids, names, order, sizes. (On real photos, telling the class from
the pixels is the task itself.) The same bots run on the same pages as they were before (ids and display file
names made of the image keys) as a control: there, picking by shared prefix is right every time, so the test is
known to fail on the old pages.
"""
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from io import BytesIO
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image as PilImage

from annotator.candidates import image_keys
from annotator.models import Batch, Category, Dataset, Hit, Image
from annotator.packing import build_hits
from tests.annotator import worker_bodies as bodies
from tests.annotator.test_worker_entry import bootstrap_of
from tests.factories import make_coco_hit

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

N_CLASSES, PER_CLASS = 12, 40
# One-sided z bound: a bot is "better than chance" when its in-class picks exceed the hypergeometric expectation
# by more than this many standard deviations (p < 3.2e-5 for one bot; below 5e-4 for the 15 bots together).
Z_BOUND = 4.0


def write_ilsvrc_layout(root, rng):
    """DIR/train/<wnid>/<wnid>_<n>.JPEG with noise pictures of random size: nothing in a picture tells its class."""
    for c in range(N_CLASSES):
        wnid = f"n9{c:07d}"
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for n in range(PER_CLASS):
            size = (rng.randint(140, 200), rng.randint(110, 160))
            picture = PilImage.merge("RGB", [PilImage.effect_noise(size, rng.uniform(10, 90)) for _ in range(3)])
            picture.save(folder / f"{wnid}_{n}.JPEG", quality=rng.randint(60, 95))
    (root / "LOC_synset_mapping.txt").write_text(
        "".join(f"n9{c:07d} shape {c}, form {c}\n" for c in range(N_CLASSES))
    )


@pytest.fixture
def packed_batch(tmp_path):
    write_ilsvrc_layout(tmp_path / "ilsvrc", random.Random(5))
    call_command("import_imagenet", str(tmp_path / "ilsvrc"), name="noise", verbosity=0)
    dataset = Dataset.objects.get(name="noise")
    batch = Batch.objects.create(name="noise-r1", dataset=dataset, task_kind="imagenet", status="published")
    build_hits(batch, seed=3)
    Hit.objects.filter(batch=batch).update(status=Hit.Status.PUBLISHED)
    return batch


@dataclass(frozen=True)
class Seen:
    """One candidate as a bot sees it, and (for scoring only) whether it is in class."""

    page: tuple  # (hit, page index)
    position: int
    order: int  # place in the page's JSON list
    image_id: str
    url: str
    file_name: str
    width: int
    height: int
    n_bytes: int
    in_class: bool


def image_bytes(url):
    """What the browser downloads for an image URL (read from the storage the URL points into)."""
    name = urlsplit(url).path.removeprefix(settings.MEDIA_URL)
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def crawl(client, batch):
    """Open every HIT of the batch as a worker would (preview, accept, every page, resume after a flush) and note
    every candidate; returns (candidates, every response body and URL the browser got)."""
    received, seen = [], []
    for hit in batch.hits.order_by("index"):
        truth = _in_class_by_key(hit)
        keys = image_keys(hit)
        preview = client.get(f"/task/{hit.pk}/")
        accepted = client.get(f"/task/{hit.pk}/?workerId=BOT-{hit.pk}&assignmentId=S-{hit.pk}")
        locked = client.get(f"/task/{hit.pk}/?workerId=BOT-{hit.pk}")
        assert (preview.status_code, accepted.status_code, locked.status_code) == (200, 200, 409)
        received += [preview.content, accepted.content, locked.content]
        token = bootstrap_of(accepted)["token"]
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        progress = client.get("/api/worker/assignment", **auth)
        received.append(progress.content)
        for index in range(progress.json()["n_pages"]):
            content = client.get(f"/api/worker/pages/{index}", **auth).json()
            for order, item in enumerate(content["items"]):
                data = image_bytes(item["url"])
                with PilImage.open(BytesIO(data)) as picture:
                    width, height = picture.size
                received += [item["url"].encode()]
                seen.append(Seen(
                    page=(hit.pk, index), position=item["position"], order=order, image_id=item["image_id"],
                    url=item["url"], file_name=item["url"].rsplit("/", 1)[-1], width=width, height=height,
                    n_bytes=len(data), in_class=truth[keys[index, item["image_id"]]][index],
                ))
        first = client.get("/api/worker/pages/0", **auth).json()["items"][0]["image_id"]
        click = {"type": "click", "image_id": first, "x": 0.5, "y": 0.5, "time": bodies.now_ms(), "selected": True}
        flushed = client.post("/api/worker/pages/0/events", data=bodies.event_flush([click]),
                              content_type="application/json", **auth)
        assert flushed.status_code == 201
        received.append(client.get("/api/worker/pages/0", **auth).content)
    return seen, received


def _in_class_by_key(hit):
    """{image key: {page index: in_class}} of a HIT (scoring only: the bots never see it)."""
    rows = hit.pages.values_list("index", "items__image__key", "items__in_class")
    table = defaultdict(dict)
    for index, key, in_class in rows:
        table[key][index] = in_class
    return table


# ---------------------------------------------------------------- the bots


def by_page(seen):
    pages = defaultdict(list)
    for candidate in seen:
        pages[candidate.page].append(candidate)
    return pages


def pick(candidates, score, n, rng):
    """The n highest-scoring candidates of a page (ties in random order)."""
    ranked = sorted(candidates, key=lambda c: (score(c), rng.random()), reverse=True)
    return ranked[:n]


def prefix_cluster_score(field, length):
    """Candidates whose field shares its first `length` characters with many others of the page: the old attack
    (`<wnid>_<n>` ids of the page's class share the wnid) without needing the class key."""
    def make(candidates):
        counts = Counter(getattr(c, field)[:length] for c in candidates)
        return lambda c: counts[getattr(c, field)[:length]]
    return make


def modal_score(value):
    """Candidates whose value is the page's most common one (e.g. one class's images sharing a size)."""
    def make(candidates):
        counts = Counter(value(c) for c in candidates)
        return lambda c: counts[value(c)]
    return make


def closeness_to_median(value):
    def make(candidates):
        values = sorted(value(c) for c in candidates)
        median = values[len(values) // 2]
        return lambda c: -abs(value(c) - median)
    return make


def fixed(value):
    return lambda candidates: value


UNSUPERVISED_BOTS = {
    **{f"{field} prefix {n}": prefix_cluster_score(field, n)
       for field in ("image_id", "file_name") for n in (1, 2, 4, 9)},
    "first positions": fixed(lambda c: -c.position),
    "last positions": fixed(lambda c: c.position),
    "sorted ids": fixed(lambda c: c.image_id),
    "modal pixel size": modal_score(lambda c: (c.width, c.height)),
    "median byte count": closeness_to_median(lambda c: c.n_bytes),
}


def learned_bot(training):
    """Naive Bayes over what a page shows, trained with the answers of other pages (more than any bot knows):
    position, id and file name characters, pixel size, byte count decile."""
    deciles = sorted(c.n_bytes for c in training)
    cuts = [deciles[len(deciles) * q // 10] for q in range(1, 10)]

    def features(c):
        return {
            "position": c.position, "id0": c.image_id[:1], "id1": c.image_id[:2], "id_last": c.image_id[-1:],
            "name0": c.file_name[:2], "width": c.width // 10, "height": c.height // 10,
            "bytes": sum(c.n_bytes > cut for cut in cuts),
        }

    counts = {True: defaultdict(Counter), False: defaultdict(Counter)}
    totals = Counter(c.in_class for c in training)
    for c in training:
        for name, value in features(c).items():
            counts[c.in_class][name][value] += 1

    def log_odds(c):
        score = 0.0
        for name, value in features(c).items():
            inside = (counts[True][name][value] + 1) / (totals[True] + 2)
            outside = (counts[False][name][value] + 1) / (totals[False] + 2)
            score += math.log(inside / outside)
        return score

    return lambda candidates: log_odds


def chance_z(pages, picked):
    """(in-class picks, z): picks against the hypergeometric chance of drawing them blindly from each page."""
    hits = expected = variance = 0.0
    for key, candidates in pages.items():
        n, k = len(candidates), len(picked[key])
        share = sum(c.in_class for c in candidates) / n
        hits += sum(c.in_class for c in picked[key])
        expected += k * share
        variance += k * share * (1 - share) * (n - k) / max(1, n - 1)
    return hits, (hits - expected) / math.sqrt(variance)


def run_bots(seen):
    """{bot: (precision, z)}: each bot picks as many candidates per page as the page has in-class ones."""
    rng = random.Random(11)
    pages = by_page(seen)
    keys = sorted(pages)
    results = {}
    for name, make in UNSUPERVISED_BOTS.items():
        picked = {}
        for key in keys:
            n_in = sum(c.in_class for c in pages[key])
            picked[key] = pick(pages[key], make(pages[key]), n_in, rng)
        hits, z = chance_z(pages, picked)
        results[name] = (hits / sum(len(p) for p in picked.values()), z)
    # Learned: trained on every other page, tested on the rest (two folds).
    picked = {}
    for fold in (0, 1):
        training = [c for key in keys[1 - fold::2] for c in pages[key]]
        score = learned_bot(training)(None)
        for key in keys[fold::2]:
            picked[key] = pick(pages[key], score, sum(c.in_class for c in pages[key]), rng)
    hits, z = chance_z(pages, picked)
    results["learned (naive Bayes)"] = (hits / sum(len(p) for p in picked.values()), z)
    return results


def as_before(seen, batch):
    """The same candidates as the pages showed them before candidate ids: id = image key, display files named
    `display/<dataset>/<key>.jpg` (the control)."""
    key_of = {}
    for hit in batch.hits.all():
        key_of.update({(hit.pk, index, cid): key for (index, cid), key in image_keys(hit).items()})
    return [
        replace(c, image_id=key_of[(*c.page, c.image_id)], file_name=f"{key_of[(*c.page, c.image_id)]}.jpg",
                url=f"/media/display/{batch.dataset.name}/{key_of[(*c.page, c.image_id)]}.jpg")
        for c in seen
    ]


def test_a_bot_reading_everything_the_pages_send_does_no_better_than_chance(client, packed_batch):
    seen, _ = crawl(client, packed_batch)
    assert len(seen) == 1152 and sum(c.in_class for c in seen) == 864  # 24 pages of 48, 36 in class each

    results = run_bots(seen)
    for name, (precision, z) in sorted(results.items()):
        print(f"{name:<24} precision {precision:.3f}  z {z:+.2f}")
    better = {name: result for name, result in results.items() if result[1] > Z_BOUND}
    assert not better, f"bots beat chance (75% in class) by more than {Z_BOUND} sd: {better}"

    # Control: the same bots on the pages as they were before (ids and file names made of the keys).
    before = run_bots(as_before(seen, packed_batch))
    assert before["image_id prefix 9"][0] == 1.0 and before["image_id prefix 9"][1] > 10
    assert before["file_name prefix 9"][0] == 1.0


def test_no_image_or_class_key_reaches_the_browser(client, packed_batch):
    seen, received = crawl(client, packed_batch)
    secrets = set(Image.objects.filter(dataset=packed_batch.dataset).values_list("key", flat=True))
    secrets |= set(Category.objects.filter(dataset=packed_batch.dataset).values_list("key", flat=True))
    text = b"\n".join(received)
    assert not [secret for secret in secrets if secret.encode() in text]
    assert not re.search(rb"n9\d{7}", text), "a wnid (or a wnid-prefixed name) reached the browser"
    assert all(re.fullmatch(r"/media/display/[0-9a-f]{32}\.jpg", c.url) for c in seen)
    assert len({c.image_id for c in seen}) == len(seen), "a candidate id repeats across pages"
    assert all(re.fullmatch(r"[0-9a-f]{16}", c.image_id) for c in seen)


def test_a_coco_image_id_never_reaches_the_browser(client):
    """A public COCO image id finds the public annotations: pages name their image by a candidate id as well."""
    hit = make_coco_hit(n_pages=3)
    for offset, image in enumerate(Image.objects.filter(hitpage__hit=hit).order_by("pk")):
        image.key = str(581929 + 7 * offset)
        image.save(update_fields=["key"])
    keys = [image.key for image in Image.objects.filter(hitpage__hit=hit)]
    received = [client.get(f"/task/{hit.pk}/").content]
    accepted = client.get(f"/task/{hit.pk}/?workerId=COCOBOT&assignmentId=S1")
    received.append(accepted.content)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {bootstrap_of(accepted)['token']}"}
    for index in range(3):
        received.append(client.get(f"/api/worker/pages/{index}", **auth).content)
    assert all(response for response in received)
    text = b"\n".join(received)
    assert not [key for key in keys if key.encode() in text]
