# Project -> Compute -> Image Chains (isoforge). Copy into openstack_dashboard/local/enabled.
PANEL = 'image_chains'
PANEL_DASHBOARD = 'project'
PANEL_GROUP = 'compute'
ADD_PANEL = 'isoforge_dashboard.content.image_chains.panel.ImageChains'
