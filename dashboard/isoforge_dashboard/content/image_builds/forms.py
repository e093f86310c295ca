import re

from django.utils.translation import gettext_lazy as _

from horizon import exceptions
from horizon import forms
from horizon import messages

from openstack_dashboard import api

from isoforge_dashboard.api import isoforge

NEW_CHAIN = '__new__'
AUTO = 'auto'
NONE = 'none'
DEFAULT = ''

# the API's validation reasons name the request's fields ("flavor: missing"); the form's
# fields that hold them
FIELD_OF = {
    'name': 'name',
    'iso_image': 'iso_image',
    'flavor': 'flavor',
    'virtio_win_image': 'virtio_win',
    'os': 'os_profile',
    'os.type': 'os_profile',
    'os.distro': 'os_distro',
    'os.version': 'os_version',
    'firmware': 'firmware',
    'chain': 'new_chain',
    'image.visibility': 'visibility',
    'install.mode': 'unattended',
    'install.timeout_s': 'timeout',
    'install.answers': 'unattended',
}
PROBLEM = re.compile(r'^([a-z_][a-z0-9_.]*): (.+)$')


def split_problems(detail):
    """'a: x; b.c: y' -> [('a', 'x'), ('b.c', 'y')]; anything else -> [(None, detail)]."""
    out = []
    for part in detail.split('; '):
        m = PROBLEM.match(part)
        out.append((m.group(1), m.group(2)) if m else (None, part))
    return out


class CreateBuildForm(forms.SelfHandlingForm):
    name = forms.CharField(max_length=255, label=_("Name"))
    iso_image = forms.ThemableChoiceField(
        label=_("ISO"),
        help_text=_("An ISO image of the project (disk format iso) the installer boots from."))
    flavor = forms.ThemableChoiceField(
        label=_("Flavor"),
        help_text=_("Its disk is the size of the image's root disk; its vCPUs and RAM run "
                    "the installer."))
    virtio_win = forms.ThemableChoiceField(
        label=_("virtio-win drivers"), required=False,
        help_text=_("Auto: the cloud's virtio-win ISO when the OS is Windows."))
    os_profile = forms.ThemableChoiceField(
        label=_("OS profile"), required=False,
        help_text=_("The devices the guest sees. Default: chosen from the ISO image's "
                    "os_type, os_distro and os_version; distro and version below choose "
                    "among the profiles of the chosen OS type."))
    os_distro = forms.CharField(max_length=64, required=False, label=_("OS distro"),
                                help_text=_("As Glance's os_distro, e.g. debian, win2k19."))
    os_version = forms.CharField(max_length=64, required=False, label=_("OS version"))
    chain = forms.ThemableChoiceField(
        label=_("Chain"),
        help_text=_("The image becomes the next version of this chain."),
        widget=forms.ThemableSelectWidget(attrs={'class': 'switchable',
                                                 'data-slug': 'chain'}))
    new_chain = forms.CharField(
        max_length=64, required=False, label=_("New chain name"),
        help_text=_("Letters, digits, '.', '_' and '-'. Default: the build's name."),
        widget=forms.TextInput(attrs={'class': 'switched', 'data-switch-on': 'chain',
                                      'data-chain-__new__': _("New chain name")}))
    firmware = forms.ThemableChoiceField(
        label=_("Firmware"), required=False,
        choices=[(DEFAULT, _("The profile's")), ('bios', _("BIOS")), ('uefi', _("UEFI"))])
    visibility = forms.ThemableChoiceField(
        label=_("Visibility"),
        choices=[('private', _("Private")), ('shared', _("Shared")),
                 ('community', _("Community")), ('public', _("Public"))])
    unattended = forms.BooleanField(
        label=_("Unattended"), required=False,
        help_text=_("isoforge writes the answer files of the OS; otherwise install in the "
                    "console and click Finish."))
    timeout = forms.IntegerField(
        label=_("Install timeout (seconds)"), initial=7200, required=False,
        help_text=_("The build fails when the install has not ended by then."))

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        isos = self._isos(request)
        self.fields['iso_image'].choices = \
            [(i.id, i.name or i.id) for i in isos] or [('', _("No ISO images"))]
        self.fields['virtio_win'].choices = \
            [(AUTO, _("Auto")), (NONE, _("None"))] + \
            [(i.id, i.name or i.id) for i in isos]
        self.fields['flavor'].choices = self._flavors(request)
        self.fields['os_profile'].choices = self._profiles(request)
        self.fields['chain'].choices = [(NEW_CHAIN, _("A new chain"))] + \
            self._chains(request)

    @staticmethod
    def _isos(request):
        try:
            images, _more, _prev = api.glance.image_list_detailed(
                request, filters={'disk_format': 'iso', 'status': 'active'})
            return sorted(images, key=lambda i: (i.name or '').lower())
        except Exception:
            exceptions.handle(request, _("Unable to retrieve ISO images."))
            return []

    @staticmethod
    def _flavors(request):
        try:
            flavors = sorted(api.nova.flavor_list(request), key=lambda f: (f.ram, f.name))
            return [(f.id, '%s (%d vCPU, %d MiB, %d GiB)' % (f.name, f.vcpus, f.ram, f.disk))
                    for f in flavors] or [('', _("No flavors"))]
        except Exception:
            exceptions.handle(request, _("Unable to retrieve flavors."))
            return [('', _("No flavors"))]

    def _profiles(self, request):
        self._profile_types = {}
        choices = [(DEFAULT, _("Default: from the ISO image properties"))]
        try:
            for p in isoforge.profile_list(request):
                label = p['name']
                if p.get('description'):
                    label = '%s: %s' % (p['name'], p['description'])
                choices.append((p['name'], label))
                if p.get('os_type'):
                    self._profile_types[p['name']] = p['os_type']
        except Exception:
            exceptions.handle(request, _("Unable to retrieve the OS profiles."))
        return choices

    @staticmethod
    def _chains(request):
        try:
            return [(c['name'], '%s (%s versions)' % (c['name'], c.get('versions', '?')))
                    for c in isoforge.chain_list(request)]
        except Exception:
            exceptions.handle(request, _("Unable to retrieve the image chains."))
            return []

    def _os(self, data):
        os_ = {}
        profile = data.get('os_profile')
        if profile:
            # a profile's OS type; distro and version choose among that type's profiles
            os_['type'] = getattr(self, '_profile_types', {}).get(profile) or \
                ('windows' if profile.startswith('windows') else
                 'linux' if profile.startswith('linux') else 'other')
        if data.get('os_distro'):
            os_['distro'] = data['os_distro']
        if data.get('os_version'):
            os_['version'] = data['os_version']
        return os_ or None

    def request_body(self, data):
        body = {
            'name': data['name'],
            'iso_image': data['iso_image'],
            'flavor': data['flavor'],
            'install': {'mode': 'unattended' if data.get('unattended') else 'interactive'},
            'image': {'visibility': data['visibility']},
        }
        virtio = data.get('virtio_win') or AUTO
        body['virtio_win_image'] = None if virtio == NONE else virtio
        os_ = self._os(data)
        if os_:
            body['os'] = os_
        if data.get('firmware'):
            body['firmware'] = data['firmware']
        if data.get('timeout'):
            body['install']['timeout_s'] = data['timeout']
        if data.get('chain') == NEW_CHAIN:
            if data.get('new_chain'):
                body['chain'] = data['new_chain']
        elif data.get('chain'):
            body['chain'] = data['chain']
        return body

    def handle(self, request, data):
        try:
            build = isoforge.build_create(request, **self.request_body(data))
        except isoforge.IsoforgeBadRequest as e:
            # the API's reasons, next to the fields they are about
            for field, reason in split_problems(e.detail):
                target = FIELD_OF.get(field)
                if target in self.fields:
                    self.add_error(target, reason)
                else:
                    self.api_error('%s: %s' % (field, reason) if field else reason)
            return False
        except isoforge.IsoforgeError as e:
            self.api_error(e.detail)
            return False
        messages.success(request, _('Build "%s" queued.') % build.get('name'))
        return build
