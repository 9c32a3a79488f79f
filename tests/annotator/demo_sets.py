"""Generated demo sets shared by the importer and demo-data tests (made once per test session)."""
import pytest

from devtools import demo_data


@pytest.fixture(scope="session")
def imagenet_demo_dir(tmp_path_factory):
    """12 classes x (6 train + 2 val + 2 shifted) images, with boxes."""
    out = tmp_path_factory.mktemp("imagenet-demo")
    demo_data.generate_imagenet(out, seed=7, per_class=6)
    return out


@pytest.fixture(scope="session")
def coco_demo_dir(tmp_path_factory):
    """24 train + 8 val + 8 shifted images with 2 to 4 objects each."""
    out = tmp_path_factory.mktemp("coco-demo")
    demo_data.generate_coco(out, seed=7, per_class=6)
    return out
