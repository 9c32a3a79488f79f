"""Write the Noto Emoji SVGs the COCO categories use (annotator/worker/icons.py) from the npm package
@iconify-json/noto into frontend_static/icons/noto/, with the package's licence and version.

    npm pack @iconify-json/noto@1.2.9 && tar xzf iconify-json-noto-1.2.9.tgz
    python bin/extract_noto_icons.py package/ /usr/share/common-licenses/Apache-2.0
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from annotator.worker.icons import COCO_ICONS  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "frontend_static" / "icons" / "noto"


def svg(icon_set, name):
    icon = icon_set["icons"][name]
    width = icon.get("width", icon_set.get("width", 16))
    height = icon.get("height", icon_set.get("height", 16))
    box = f'{icon.get("left", 0)} {icon.get("top", 0)} {width} {height}'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="{box}">'
            f'{icon["body"]}</svg>\n')


def main(package_dir, licence_path):
    package = Path(package_dir)
    icon_set = json.loads((package / "icons.json").read_text())
    version = json.loads((package / "package.json").read_text())["version"]
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sorted(set(COCO_ICONS.values())):
        (OUT / f"{name}.svg").write_text(svg(icon_set, name))
    (OUT / "LICENSE").write_text(Path(licence_path).read_text())
    (OUT / "SOURCE.md").write_text(
        f"Noto Emoji by Google Inc (https://github.com/googlefonts/noto-emoji), Apache License 2.0 (LICENSE).\n"
        f"Taken from the npm package @iconify-json/noto {version} by bin/extract_noto_icons.py, unchanged but for\n"
        f"the SVG wrapper around each icon's body.\n"
    )
    print(f"{len(set(COCO_ICONS.values()))} icons written to {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
