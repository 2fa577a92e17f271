"""Synchroteam API access: HTTP policy, record normalisation, the dlt source."""
