"""The byproduct concepts of LUAB, free of Django and of torch.

Record shapes, validation rules, icon-action replay, geometry, training targets, page summaries and the published
AB formats are defined here once; `annotator` (the Django app that collects and reviews) and `training` (the
Django app and its torch engine, `training/ml`) both import them. Nothing here imports Django, torch or either app.
"""
