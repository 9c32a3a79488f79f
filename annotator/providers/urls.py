from django.urls import path

from . import views

urlpatterns = [
    path("prolific/webhook/", views.ProlificWebhookView.as_view(), name="prolific-webhook"),
]
