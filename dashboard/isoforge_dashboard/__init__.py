"""isoforge_dashboard: the Horizon plugin of isoforge (Project -> Compute -> Image Builds and
Image Chains). It talks to isoforge-api (service type ``image-build``) as the logged-in user."""
