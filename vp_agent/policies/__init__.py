"""Policies, one folder each (``configuration_<name>.py`` + ``modeling_<name>.py``), one interface."""
