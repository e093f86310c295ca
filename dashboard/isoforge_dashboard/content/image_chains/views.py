from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from horizon import exceptions
from horizon import tables

from isoforge_dashboard.api import isoforge
from isoforge_dashboard.content.image_chains import tables as c_tables


class IndexView(tables.DataTableView):
    table_class = c_tables.ChainsTable
    page_title = _("Image Chains")
    template_name = 'horizon/common/_data_table_view.html'

    def get_data(self):
        try:
            return isoforge.chain_list(self.request)
        except Exception:
            exceptions.handle(self.request, _("Unable to retrieve image chains."))
            return []


class DetailView(tables.DataTableView):
    table_class = c_tables.VersionsTable
    template_name = 'horizon/common/_data_table_view.html'

    @property
    def page_title(self):
        return _("Image Chain: %s") % self.kwargs['chain']

    def get_data(self):
        try:
            chain = isoforge.chain_get(self.request, self.kwargs['chain'])
        except Exception:
            exceptions.handle(self.request, _("Unable to retrieve the chain."),
                              redirect=reverse('horizon:project:image_chains:index'))
        return sorted(chain['versions'], key=lambda v: -int(v.get('version') or 0))
