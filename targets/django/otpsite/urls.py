from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home),
    path("signup/", views.signup),
    path("verify/", views.verify),
    path("login/", views.login_view),
]
