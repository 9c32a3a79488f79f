"""Replay of a COCO-style action history into the icons left on the image.

One function for everyone who needs the final tags: page saves (validation and review summary), exports,
training manifests and analyses.
"""

ADD, MOVE, REMOVE = "add", "move", "remove"


class ReplayError(ValueError):
    """An action that does not fit the icons on the image at that moment; index is its position in the list."""

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


def _point(action, name):
    point = action.get(name)
    if not point:
        return None
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
                target = _point(action, "pointTo")
                if target is None:
                    raise ReplayError(index, f"add of {key} needs pointTo")
                if key in positions and not adds_only:
                    raise ReplayError(index, f"add of {key}: that icon is already on the image")
                positions[key] = target
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
                if _point(action, "pointFrom") is None:
                    raise ReplayError(index, f"{action_type} of {key} needs pointFrom")
                if action_type == MOVE:
                    target = _point(action, "pointTo")
                    if target is None:
                        raise ReplayError(index, f"move of {key} needs pointTo")
                    positions[key] = target
                else:
                    del positions[key]
                    removed_at[key] = index
            else:
                raise ReplayError(index, f"unknown actionType {action_type!r}")
        except ReplayError:
            if strict:
                raise
    return positions
