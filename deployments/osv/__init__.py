"""OSV advisories: reading a database the operator mirrors, ordering versions, matching packages.

A library with no Django (the build enforces it). deployments.services.vulnerabilities stores what
`sources.load` reads and asks `matching.findings` which installed packages an advisory affects;
deployments.imaging.packages reads an image's Debian packages with `dpkg.parse_status`.
"""
