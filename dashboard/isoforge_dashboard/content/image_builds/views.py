from django.urls import reverse
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _

from horizon import exceptions
from horizon import forms
from horizon import tables
from horizon import tabs
from horizon.utils import memoized

from isoforge_dashboard.api import isoforge
from isoforge_dashboard.content.image_builds import forms as b_forms
from isoforge_dashboard.content.image_builds import tables as b_tables
from isoforge_dashboard.content.image_builds import tabs as b_tabs


annotate = b_tables.annotate


class IndexView(tables.DataTableView):
    table_class = b_tables.BuildsTable
    page_title = _("Image Builds")
    template_name = 'horizon/common/_data_table_view.html'

    def has_prev_data(self, table):
        return getattr(self, '_prev', False)

    def has_more_data(self, table):
        return getattr(self, '_more', False)

    def get_data(self):
        meta = b_tables.BuildsTable._meta
        prev_marker = self.request.GET.get(meta.prev_pagination_param)
        marker = prev_marker or self.request.GET.get(meta.pagination_param)
        filters = self.get_filters()
        self._prev = self._more = False
        try:
            if prev_marker:
                # the page before a marker: the builds after it in the other order
                builds, self._prev = isoforge.build_list(
                    self.request, marker=marker, sort_dir='asc', filters=filters,
                    paginate=True)
                builds.reverse()
                self._more = True
            else:
                builds, self._more = isoforge.build_list(
                    self.request, marker=marker, sort_dir='desc', filters=filters,
                    paginate=True)
                self._prev = marker is not None
        except Exception:
            builds = []
            exceptions.handle(self.request, _("Unable to retrieve image builds."))
        return [annotate(self.request, b) for b in builds]

    def get_filters(self):
        filters = {}
        field = self.table.get_filter_field()
        string = self.table.get_filter_string()
        if field and string and field in ('name', 'chain', 'state'):
            filters[field] = string
        return filters


class CreateView(forms.ModalFormView):
    form_class = b_forms.CreateBuildForm
    form_id = 'create_build_form'
    modal_id = 'create_build_modal'
    template_name = 'project/image_builds/create.html'
    submit_label = _("Build")
    submit_url = reverse_lazy('horizon:project:image_builds:create')
    success_url = reverse_lazy('horizon:project:image_builds:index')
    page_title = _("Build from ISO")


class DetailView(tabs.TabView):
    tab_group_class = b_tabs.BuildDetailTabs
    template_name = 'horizon/common/_detail.html'
    page_title = '{{ build.name }}'

    @memoized.memoized_method
    def get_build(self):
        try:
            return annotate(self.request,
                            isoforge.build_get(self.request, self.kwargs['build_id']))
        except Exception:
            exceptions.handle(self.request, _("Unable to retrieve the build."),
                              redirect=reverse('horizon:project:image_builds:index'))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        build = self.get_build()
        table = b_tables.BuildsTable(self.request)
        context['build'] = build
        context['url'] = reverse('horizon:project:image_builds:index')
        context['actions'] = table.render_row_actions(build)
        return context

    def get_tabs(self, request, *args, **kwargs):
        return self.tab_group_class(request, build=self.get_build(), **kwargs)
