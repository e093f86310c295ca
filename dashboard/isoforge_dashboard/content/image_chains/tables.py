from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from horizon import tables


def image_link(image_id):
    return reverse('horizon:project:images:images:detail', args=[image_id]) \
        if image_id else None


class ChainsTable(tables.DataTable):
    name = tables.Column('name', verbose_name=_("Chain"),
                         link='horizon:project:image_chains:detail')
    versions = tables.Column('versions', verbose_name=_("Versions"))
    latest_version = tables.Column('latest_version', verbose_name=_("Latest version"),
                                   empty_value='-')
    latest_image = tables.Column('latest_image', verbose_name=_("Latest image"),
                                 link=lambda c: image_link(c.get('latest_image')),
                                 empty_value='-')

    def get_object_id(self, datum):
        return datum['name']

    class Meta(object):
        name = 'chains'
        verbose_name = _("Image Chains")


class VersionsTable(tables.DataTable):
    version = tables.Column('version', verbose_name=_("Version"))
    image_id = tables.Column('image_id', verbose_name=_("Image"),
                             link=lambda v: image_link(v.get('image_id')))
    parent = tables.Column('parent', verbose_name=_("Parent"),
                           link=lambda v: image_link(v.get('parent')), empty_value='-')
    build_id = tables.Column(
        'build_id', verbose_name=_("Build"), empty_value='-',
        link=lambda v: reverse('horizon:project:image_builds:detail', args=[v['build_id']])
        if v.get('build_id') else None)
    status = tables.Column('status', verbose_name=_("Status"))
    created_at = tables.Column('created_at', verbose_name=_("Created"), empty_value='-')

    def get_object_id(self, datum):
        return str(datum['version'])

    class Meta(object):
        name = 'versions'
        verbose_name = _("Versions")
