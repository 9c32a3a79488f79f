"""Icon actions of a COCO-style page: what makes one valid, and their replay into the icons left on the image.

One rule for everyone: the worker API's validation, the review summary, the COCO-AB exporter and importer,
training manifests and analyses. An action is stored and published as {actionType, iconType, pointFrom (null on
add), pointTo (absent on remove), timeAt}.
"""

ADD, MOVE, REMOVE = "add", "move", "remove"
# The points each action type needs: an add places an icon, a move takes it and places it, a remove takes it.
NEEDED_POINTS = {ADD: ("pointTo",), MOVE: ("pointFrom", "pointTo"), REMOVE: ("pointFrom",)}


class ReplayError(ValueError):
    """An action that does not fit the icons on the image at that moment; index is its position in the list."""

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


def missing_point(action_type, points):
    """The first point ("pointFrom" / "pointTo") an action of this type needs and `points` (name -> point or
    None) lacks; None when it has them all."""
    return next((name for name in NEEDED_POINTS[action_type] if not points.get(name)), None)


def action_dict(action_type, icon_type, point_from, point_to, time_at):
    """An action in its stored and published form: pointFrom null on add, pointTo left out on remove."""
    action = {"actionType": action_type, "iconType": icon_type, "pointFrom": None if action_type == ADD else point_from}
    if action_type != REMOVE:
        action["pointTo"] = point_to
    action["timeAt"] = time_at
    return action


def _xy(point):
    return {"x": point["x"], "y": point["y"]}


def replay_actions(actions, adds_only=False, strict=True):
    """Final icon positions {category_key: {"x", "y"}} after the actions, in order.

    actions: dicts with actionType, iconType, pointFrom (null on add), pointTo (absent on remove), as stored.
    adds_only: the released COCO-AB loader's reading (the last add of each category; moves and removes ignored).
    strict: raise ReplayError on the first impossible action (a double add, a move or remove of an icon that is
    not on the image, a missing point); otherwise skip such actions (imported data).
    """
    positions = {}
    removed_at = {}
    for index, action in enumerate(actions):
        action_type, key = action.get("actionType"), action.get("iconType")
        try:
            if action_type == ADD:
                if missing_point(ADD, action):
                    raise ReplayError(index, f"add of {key} needs pointTo")
                if key in positions and not adds_only:
                    raise ReplayError(index, f"add of {key}: that icon is already on the image")
                positions[key] = _xy(action["pointTo"])
                removed_at.pop(key, None)
            elif adds_only:
                continue
            elif action_type in (MOVE, REMOVE):
                if key not in positions:
                    if key in removed_at:
                        raise ReplayError(
                            index, f"{action_type} of {key}: that icon was removed by action {removed_at[key]}"
                        )
                    raise ReplayError(index, f"{action_type} of {key}: that icon was never added")
                missing = missing_point(action_type, action)
                if missing:
                    raise ReplayError(index, f"{action_type} of {key} needs {missing}")
                if action_type == MOVE:
                    positions[key] = _xy(action["pointTo"])
                else:
                    del positions[key]
                    removed_at[key] = index
            else:
                raise ReplayError(index, f"unknown actionType {action_type!r}")
        except ReplayError:
            if strict:
                raise
    return positions
