from django.urls import path, re_path

from annotator.worker import views

urlpatterns = [
    path("task/<int:hit_id>/", views.task_entry, name="worker-task"),
    path("task/icons/<int:category_id>.svg", views.category_icon, name="worker-icon"),
    re_path(r"^api/worker/assignment/?$", views.AssignmentView.as_view(), name="worker-assignment"),
    re_path(r"^api/worker/pages/(?P<index>[0-9]+)/?$", views.PageView.as_view(), name="worker-page"),
    re_path(
        r"^api/worker/pages/(?P<index>[0-9]+)/events/?$", views.PageEventsView.as_view(), name="worker-page-events"
    ),
    re_path(r"^api/worker/pages/(?P<index>[0-9]+)/save/?$", views.PageSaveView.as_view(), name="worker-page-save"),
    re_path(r"^api/worker/submit/?$", views.SubmitView.as_view(), name="worker-submit"),
    re_path(r"^api/worker/resume/?$", views.ResumeView.as_view(), name="worker-resume"),
]
