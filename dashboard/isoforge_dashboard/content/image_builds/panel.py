from django.utils.translation import gettext_lazy as _
import horizon


class ImageBuilds(horizon.Panel):
    name = _("Image Builds")
    slug = 'image_builds'
    # shown when the catalog has isoforge-api (service type image-build)
    permissions = ('openstack.services.image-build',)
