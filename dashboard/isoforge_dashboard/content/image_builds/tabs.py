from django.utils.translation import gettext_lazy as _

from horizon import exceptions
from horizon import tabs

from isoforge_dashboard.api import isoforge
from isoforge_dashboard.content.image_builds import tables as b_tables


class OverviewTab(tabs.Tab):
    name = _("Overview")
    slug = 'overview'
    template_name = 'project/image_builds/_detail_overview.html'

    def get_context_data(self, request):
        return {'build': self.tab_group.kwargs['build']}


class EventsTab(tabs.TableTab):
    name = _("Events")
    slug = 'events'
    table_classes = (b_tables.EventsTable,)
    template_name = 'horizon/common/_detail_table.html'
    preload = False

    def get_events_data(self):
        build = self.tab_group.kwargs['build']
        try:
            events = isoforge.build_events(self.request, build['id'])
        except Exception:
            exceptions.handle(self.request, _("Unable to retrieve the build's events."))
            return []
        for i, e in enumerate(events):
            e['id'] = str(i)
        return events


class ConsoleTab(tabs.Tab):
    """The build's console in an iframe, as Horizon's instance console tab shows it.

    Loaded when the tab is opened (preload = False), so each look mints one fresh,
    single-use console URL.
    """
    name = _("Console")
    slug = 'console'
    template_name = 'project/image_builds/_detail_console.html'
    preload = False

    def get_context_data(self, request):
        build = self.tab_group.kwargs['build']
        console_url, reason = None, None
        if build.get('state') != 'installing':
            reason = _("The console is there while the build is installing "
                       "(now: %s).") % build.get('state')
        else:
            try:
                console_url = isoforge.build_console(request, build['id'])['url']
            except isoforge.IsoforgeError as e:
                reason = e.detail
        return {'console_url': console_url, 'reason': reason, 'build': build}

    def allowed(self, request):
        return b_tables.can_act(request)


class BuildDetailTabs(tabs.DetailTabsGroup):
    slug = 'build_details'
    tabs = (OverviewTab, EventsTab, ConsoleTab)
    sticky = True
