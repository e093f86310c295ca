# Project -> Compute -> Image Builds (isoforge). Copy into openstack_dashboard/local/enabled.
from isoforge_dashboard.api import exceptions as isoforge

PANEL = 'image_builds'
PANEL_DASHBOARD = 'project'
PANEL_GROUP = 'compute'
ADD_PANEL = 'isoforge_dashboard.content.image_builds.panel.ImageBuilds'
ADD_INSTALLED_APPS = ['isoforge_dashboard']
# how Horizon treats isoforge-api's answers: a 401 logs the user out, a 404 is "not found"
ADD_EXCEPTIONS = {
    'unauthorized': (isoforge.IsoforgeUnauthorized,),
    'not_found': (isoforge.IsoforgeNotFound,),
    'recoverable': (isoforge.IsoforgeError,),
}
