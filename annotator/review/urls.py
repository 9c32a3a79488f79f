from django.urls import path

from . import views

app_name = "review"
urlpatterns = [
    path("", views.batch_list, name="batches"),
    path("batches/<int:batch_id>/", views.batch_dashboard, name="batch"),
    path("batches/<int:batch_id>/decide/", views.bulk_decide, name="bulk-decide"),
    path("batches/<int:batch_id>/rerun/", views.rerun_rules, name="rerun"),
    path("reports/", views.reports, name="reports"),
    path("batches/<int:batch_id>/report/", views.build_report, name="build-report"),
    path("assignments/<int:assignment_id>/", views.assignment_detail, name="assignment"),
    path("assignments/<int:assignment_id>/decide/", views.decide, name="decide"),
    path("assignments/<int:assignment_id>/bonus/", views.bonus, name="bonus"),
    path("workers/<int:worker_id>/", views.worker_detail, name="worker"),
    path("workers/<int:worker_id>/block/", views.block, name="block"),
    path("workers/<int:worker_id>/unblock/", views.unblock, name="unblock"),
]
