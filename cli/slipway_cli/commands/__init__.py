"""One module per subject, named like the API's: each `register(cli)` adds its commands."""
