from django.urls import re_path

from isoforge_dashboard.content.image_chains import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
    re_path(r'^(?P<chain>[^/]+)/$', views.DetailView.as_view(), name='detail'),
]
