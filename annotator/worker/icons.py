"""Category icons: Noto Emoji drawings (Apache-2.0, shipped under frontend_static/icons/noto/ with their licence)
for the 80 COCO categories, found by category name; any other category gets a tile drawn by us with its name."""
import hashlib
import textwrap
from xml.sax.saxutils import escape

from django.templatetags.static import static
from django.urls import reverse

NOTO_FOLDER = "icons/noto"

# COCO category name -> Noto Emoji icon name. Where no emoji shows the object itself, the nearest one that a worker
# reads as it (the tile's caption gives the name as well).
COCO_ICONS = {
    "person": "person", "bicycle": "bicycle", "car": "automobile", "motorcycle": "motorcycle",
    "airplane": "airplane", "bus": "bus", "train": "locomotive", "truck": "delivery-truck", "boat": "sailboat",
    "traffic light": "vertical-traffic-light", "fire hydrant": "fire-extinguisher", "stop sign": "stop-sign",
    "parking meter": "p-button", "bench": "seat",
    "bird": "bird", "cat": "cat", "dog": "dog", "horse": "horse", "sheep": "ewe", "cow": "cow",
    "elephant": "elephant", "bear": "bear", "zebra": "zebra", "giraffe": "giraffe",
    "backpack": "backpack", "umbrella": "umbrella", "handbag": "handbag", "tie": "necktie", "suitcase": "luggage",
    "frisbee": "flying-disc", "skis": "skis", "snowboard": "snowboarder", "sports ball": "soccer-ball",
    "kite": "kite", "baseball bat": "cricket-game", "baseball glove": "gloves", "skateboard": "skateboard",
    "surfboard": "person-surfing", "tennis racket": "badminton",
    "bottle": "bottle-with-popping-cork", "wine glass": "wine-glass", "cup": "hot-beverage",
    "fork": "fork-and-knife", "knife": "kitchen-knife", "spoon": "spoon", "bowl": "bowl-with-spoon",
    "banana": "banana", "apple": "red-apple", "sandwich": "sandwich", "orange": "tangerine", "broccoli": "broccoli",
    "carrot": "carrot", "hot dog": "hot-dog", "pizza": "pizza", "donut": "doughnut", "cake": "shortcake",
    "chair": "chair", "couch": "couch-and-lamp", "potted plant": "potted-plant", "bed": "bed",
    "dining table": "fork-and-knife-with-plate", "toilet": "toilet",
    "tv": "television", "laptop": "laptop", "mouse": "computer-mouse", "remote": "video-game",
    "keyboard": "keyboard", "cell phone": "mobile-phone",
    "microwave": "popcorn", "oven": "cooking", "toaster": "bread", "sink": "potable-water",
    "refrigerator": "ice",
    "book": "closed-book", "clock": "mantelpiece-clock", "vase": "amphora", "scissors": "scissors",
    "teddy bear": "teddy-bear", "hair drier": "person-getting-haircut", "toothbrush": "toothbrush",
}
# Other spellings of the same categories (PASCAL VOC, older COCO releases).
ALIASES = {
    "aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv", "tv monitor": "tv",
    "diningtable": "dining table", "pottedplant": "potted plant", "doughnut": "donut", "hair dryer": "hair drier",
    "cellphone": "cell phone", "mobile phone": "cell phone", "laptop computer": "laptop",
}


def noto_icon(name):
    """The Noto icon name for a category name, or None: case, spaces, _ and - do not matter."""
    wanted = " ".join(name.lower().replace("_", " ").replace("-", " ").split())
    return COCO_ICONS.get(ALIASES.get(wanted, wanted))


def icon_url(category):
    """Where a page loads the category's icon: the shipped Noto drawing, or the tile drawn for its name."""
    icon = noto_icon(category.name)
    if icon:
        return static(f"{NOTO_FOLDER}/{icon}.svg")
    return reverse("worker-icon", args=[category.pk])


def icon_colour(key):
    hue = int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue}, 60%, 45%)"


def icon_svg(category):
    lines = textwrap.wrap(category.name, width=10)[:3] or [category.key]
    first_y = 32 - 7 * (len(lines) - 1)
    text = "".join(
        f'<text x="32" y="{first_y + 14 * i}" text-anchor="middle" dominant-baseline="middle">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    label = escape(category.name, {'"': "&quot;"})
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64" role="img" '
        f'aria-label="{label}">'
        f'<rect x="2" y="2" width="60" height="60" rx="12" fill="{icon_colour(category.key)}"/>'
        f'<g font-family="sans-serif" font-size="11" font-weight="bold" fill="#fff">{text}</g></svg>'
    )
