from django.utils.translation import gettext_lazy as _
import horizon


class ImageChains(horizon.Panel):
    name = _("Image Chains")
    slug = 'image_chains'
    permissions = ('openstack.services.image-build',)
