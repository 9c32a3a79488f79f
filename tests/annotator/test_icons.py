import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from annotator.coco_categories import COCO_CATEGORIES
from annotator.worker import icons
from tests import factories

STATIC = Path(settings.STATICFILES_DIRS[0])


def test_the_80_coco_categories_in_12_supercategories():
    assert len(COCO_CATEGORIES) == 80 and len({name for _, name, _ in COCO_CATEGORIES}) == 80
    assert len({supercategory for _, _, supercategory in COCO_CATEGORIES}) == 12


@pytest.mark.parametrize("name", [name for _, name, _ in COCO_CATEGORIES])
def test_every_coco_category_resolves_to_a_shipped_icon(name):
    icon = icons.noto_icon(name)
    assert icon, f"{name} has no icon"
    svg = (STATIC / icons.NOTO_FOLDER / f"{icon}.svg").read_text()
    assert svg.startswith("<svg") and "<path" in svg


def test_the_icons_ship_with_their_licence_and_nothing_points_elsewhere():
    folder = STATIC / icons.NOTO_FOLDER
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert {path.stem for path in folder.glob("*.svg")} == set(icons.COCO_ICONS.values())
    for path in folder.glob("*.svg"):
        # References inside the drawing only (#id): no hot link, nothing fetched from elsewhere.
        assert not re.search(r'href="(?!#)|url\((?!#)', path.read_text()), path


def test_names_match_whatever_their_case_and_other_spellings():
    assert icons.noto_icon("Traffic_Light") == icons.noto_icon("traffic light") == "vertical-traffic-light"
    assert icons.noto_icon("aeroplane") == icons.noto_icon("airplane")
    assert icons.noto_icon("tvmonitor") == "television"


@pytest.mark.django_db
def test_a_category_without_an_icon_gets_the_tile_drawn_with_its_name():
    dataset = factories.DatasetFactory()
    known = factories.CategoryFactory(dataset=dataset, name="Teddy Bear")
    unknown = factories.CategoryFactory(dataset=dataset, name="hexagon")
    assert icons.icon_url(known).endswith("/icons/noto/teddy-bear.svg")
    assert icons.icon_url(unknown) == f"/task/icons/{unknown.pk}.svg"
    tile = Client().get(icons.icon_url(unknown))
    assert tile.status_code == 200 and tile["Content-Type"] == "image/svg+xml" and b"hexagon" in tile.content
