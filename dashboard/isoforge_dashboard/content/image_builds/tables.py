from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from horizon import exceptions
from horizon import tables
from horizon.utils import filters as h_filters

from isoforge_dashboard.api import isoforge

# a build's row is final (True/False) once terminal; until then (None) Horizon polls it
STATUS_CHOICES = (
    ('active', True),
    ('failed', False),
    ('cancelled', False),
)
STATE_DISPLAY = (
    ('queued', _("Queued")),
    ('resolving', _("Resolving")),
    ('fetching', _("Fetching")),
    ('assembling', _("Assembling")),
    ('installing', _("Installing")),
    ('customizing', _("Customizing")),
    ('snapshotting', _("Snapshotting")),
    ('uploading', _("Uploading")),
    ('active', _("Active")),
    ('failed', _("Failed")),
    ('cancelled', _("Cancelled")),
)


def can_act(request):
    """Members (and admins) start and steer builds; a reader only looks."""
    roles = {r['name'].lower() for r in getattr(request.user, 'roles', [])}
    return bool(roles & {'member', '_member_', 'admin'})


class CreateBuild(tables.LinkAction):
    name = 'create'
    verbose_name = _("Build from ISO")
    url = 'horizon:project:image_builds:create'
    classes = ('ajax-modal',)
    icon = 'plus'

    def allowed(self, request, datum=None):
        return can_act(request)


class FinishBuild(tables.BatchAction):
    name = 'finish'
    help_text = _("Ends the interactive install: the guest is shut down and its disk "
                  "becomes the image.")

    @staticmethod
    def action_present(count):
        return ngettext_lazy("Finish Build", "Finish Builds", count)

    @staticmethod
    def action_past(count):
        return ngettext_lazy("Finished Build", "Finished Builds", count)

    def allowed(self, request, build=None):
        return can_act(request) and (build is None or build.state == 'installing')

    def action(self, request, obj_id):
        isoforge.build_finish(request, obj_id)


class CancelBuild(tables.BatchAction):
    name = 'cancel'
    classes = ('btn-danger',)
    help_text = _("The build stops; no image is made.")

    @staticmethod
    def action_present(count):
        return ngettext_lazy("Cancel Build", "Cancel Builds", count)

    @staticmethod
    def action_past(count):
        return ngettext_lazy("Cancelled Build", "Cancelled Builds", count)

    def allowed(self, request, build=None):
        return can_act(request) and (build is None or not build.terminal)

    def action(self, request, obj_id):
        isoforge.build_cancel(request, obj_id)


class ConsoleLink(tables.LinkAction):
    name = 'console'
    verbose_name = _("Console")
    url = 'horizon:project:image_builds:detail'

    def get_link_url(self, datum):
        base_url = super().get_link_url(datum)
        return '?'.join([base_url, urlencode({'tab': 'build_details__console'})])

    def allowed(self, request, build=None):
        return can_act(request) and build is not None and build.state == 'installing'


class DeleteBuild(tables.DeleteAction):
    help_text = _("Forgets the build's record; its image stays in Glance.")

    @staticmethod
    def action_present(count):
        return ngettext_lazy("Delete Build", "Delete Builds", count)

    @staticmethod
    def action_past(count):
        return ngettext_lazy("Deleted Build", "Deleted Builds", count)

    def allowed(self, request, build=None):
        return can_act(request) and (build is None or build.terminal)

    def delete(self, request, obj_id):
        isoforge.build_delete(request, obj_id)


def annotate(request, build):
    """'who': the user's own name for their builds, the user id for a colleague's."""
    if build.get('user_id') == request.user.id:
        build['who'] = request.user.username
    else:
        build['who'] = build.get('user_id') or '-'
    return build


class UpdateRow(tables.Row):
    ajax = True

    def get_data(self, request, build_id):
        try:
            return annotate(request, isoforge.build_get(request, build_id))
        except isoforge.IsoforgeNotFound:
            raise exceptions.NotFound()


def get_progress(build):
    p = build.get('progress')
    return '%d%%' % p if isinstance(p, int) else '-'


def get_version(build):
    return build.get('version') if build.get('version') is not None else '-'


def get_chain_link(build):
    if build.get('chain'):
        return reverse('horizon:project:image_chains:detail', args=[build['chain']])
    return None


def get_created(build):
    return h_filters.parse_isotime(build['created_at']) if build.get('created_at') else None


class BuildFilterAction(tables.FilterAction):
    filter_type = 'server'
    filter_choices = (('name', _("Name ="), True),
                      ('chain', _("Chain ="), True),
                      ('state', _("State ="), True))


class BuildsTable(tables.DataTable):
    name = tables.WrappingColumn('name', verbose_name=_("Name"),
                                 link='horizon:project:image_builds:detail')
    chain = tables.Column('chain', verbose_name=_("Chain"), link=get_chain_link,
                          empty_value='-')
    version = tables.Column(get_version, verbose_name=_("Version"))
    state = tables.Column('state', verbose_name=_("State"), status=True,
                          status_choices=STATUS_CHOICES, display_choices=STATE_DISPLAY)
    progress = tables.Column(get_progress, verbose_name=_("Progress"))
    created = tables.Column(get_created, verbose_name=_("Created"),
                            filters=(h_filters.timesince_or_never,),
                            attrs={'data-type': 'timesince'})
    who = tables.Column('who', verbose_name=_("Who"))

    def get_object_id(self, datum):
        return datum['id']

    def get_object_display(self, datum):
        return datum.get('name')

    class Meta(object):
        name = 'builds'
        verbose_name = _("Image Builds")
        status_columns = ['state']
        row_class = UpdateRow
        table_actions = (BuildFilterAction, CreateBuild, CancelBuild, DeleteBuild)
        row_actions = (FinishBuild, ConsoleLink, CancelBuild, DeleteBuild)
        pagination_param = 'marker'
        prev_pagination_param = 'prev_marker'


class EventsTable(tables.DataTable):
    time = tables.Column('time', verbose_name=_("Time"))
    state = tables.Column('state', verbose_name=_("State"), display_choices=STATE_DISPLAY)
    progress = tables.Column(get_progress, verbose_name=_("Progress"))
    message = tables.WrappingColumn('message', verbose_name=_("Message"), empty_value='')

    def get_object_id(self, datum):
        return datum['id']

    class Meta(object):
        name = 'events'
        verbose_name = _("Events")
